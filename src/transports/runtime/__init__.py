"""What runs the application for the transports: the hub (peers and actions), admission and origin policy."""
