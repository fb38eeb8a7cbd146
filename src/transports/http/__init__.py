"""HTTP on both ports: error answers, who may connect (trusted proxies, origin policy, admission), the static page."""
