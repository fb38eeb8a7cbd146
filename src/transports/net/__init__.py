"""Sockets: TCP listeners and the raw non-blocking socket loop the wsproto driver and page server share."""
