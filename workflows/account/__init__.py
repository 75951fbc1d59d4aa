"""An account once approved: provisioning, reveal, lifecycle, owners, idle tokens, Home."""
