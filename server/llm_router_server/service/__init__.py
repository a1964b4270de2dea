"""The gRPC face: the servicer, proto conversion and status table, security."""
