# bench.mk - benchmark targets beside `make bench` (its knobs, such as BENCH_LINES and
# BENCH_REPEAT, pass through the environment):
#
#   make bench-compare OLD=HEAD~1   # the previous commit's server against the working tree's:
#                                   # ingest and IRC delivery alternating run by run
#                                   # (bench/compare.sh)
#   make bench-query                # queries against ripgrep over the same lines, and
#                                   # acknowledgement latency under scans (bench/query.sh)
#   make bench-query OLD=main       # the same with OLD's server in a column of its own
#
# OLD's release binaries are built in a temporary `git worktree` at build/compare/<hash>/tree,
# copied to build/compare/<hash>/ and the worktree removed again; a later run against the same
# commit reuses the copies. This tree's are build/rel's, as `make bench` uses.

# Shell for a recipe: build OLD's binaries unless they are there; leaves $rev (the short hash)
# and $dir (where they are) set.
define bench_old_build
rev=$$(git rev-parse --short --verify "$(OLD)^{commit}"); dir=build/compare/$$rev; \
if [ ! -x $$dir/logcasterd ] || [ ! -x $$dir/logcaster ]; then \
    rm -rf $$dir/tree; \
    git worktree add --force --detach $$dir/tree $$rev; \
    trap "git worktree remove --force $$dir/tree" EXIT; \
    $(MAKE) --no-print-directory -C $$dir/tree build/rel/logcasterd build/rel/logcaster; \
    for f in logcasterd logcaster; do \
        cp $$dir/tree/build/rel/$$f $$dir/$$f.tmp && mv $$dir/$$f.tmp $$dir/$$f; done; \
    git worktree remove --force $$dir/tree; \
    trap - EXIT; \
fi; \
new="$$(git rev-parse --short HEAD)$$(git diff --quiet HEAD -- || echo +changes)"
endef

.PHONY: bench-compare bench-query
bench-compare: deps-test
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=<git-rev>" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster
	@set -e; $(bench_old_build); \
	BENCH_OLD_LABEL=$$rev BENCH_NEW_LABEL=$$new bench/compare.sh $$dir $(B)

bench-query: deps-test
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster
	@set -e; if [ -z "$(OLD)" ]; then bench/query.sh $(B); else $(bench_old_build); \
	BENCH_OLD_LABEL=$$rev BENCH_NEW_LABEL=$$new bench/query.sh $(B) $$dir; fi
