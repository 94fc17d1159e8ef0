# `make cluster`: a local LogCaster cluster in the foreground (scripts/cluster.sh): three
# JetStream nats-servers clustered on 127.0.0.1 and three logcasterd nodes (a, b, c) using
# them, from build/rel, each with its data under build/cluster/. Prints every port; Ctrl-C
# stops them all, as does the exit of any one. Knobs pass through the environment:
#
#   make cluster CLUSTER_ARGS="--cluster-replicas 3"   # options for every node
#   make cluster CLUSTER_PORT_BASE=20000               # fixed ports (see the script)
#
# nats-server comes from the test packages (scripts/debian-packages-test.txt), as for
# `make bench`.
.PHONY: cluster
cluster: deps-test
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster
	@scripts/cluster.sh $(B)
