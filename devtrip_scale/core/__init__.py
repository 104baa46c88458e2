"""What both wings stand on: errors and exit codes, the run trace, the YAML loader with file:line
errors, reconnect backoff, the health/metrics HTTP server and credential masking."""
