"""Development tools that the serving image does not install (the local tritonserver launcher)."""
