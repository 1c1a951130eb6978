"""Operating the daemon: the HTTP control server (health, metrics, status), rule reloads."""
