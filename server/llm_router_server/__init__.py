"""llm-router server: a gRPC service that answers through a local-first fallback chain."""

import os

# No child of the server uses gRPC (the embedded model's server and the validation fork
# server exec at once), so gRPC's fork handlers have nothing to do; left on, they log
# "Other threads are currently calling into gRPC, skipping fork() handlers" at start-up.
# Read when grpc is first imported, which this package's modules do after this line.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
