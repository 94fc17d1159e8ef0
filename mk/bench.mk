# bench.mk - `make bench-compare OLD=<git-rev>`: the given revision's server beside this tree's,
# ingest and IRC delivery alternating run by run (bench/compare.sh; its knobs, such as
# BENCH_LINES and BENCH_REPEAT, pass through the environment).
#
#   make bench-compare OLD=HEAD~1         # the previous commit against the working tree
#
# OLD's release binaries are built in a temporary `git worktree` at build/compare/<hash>/tree,
# copied to build/compare/<hash>/ and the worktree removed again; a later run against the same
# commit reuses the copies. This tree's are build/rel's, as `make bench` uses.

.PHONY: bench-compare
bench-compare: deps-test
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=<git-rev>" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster
	@set -e; rev=$$(git rev-parse --short --verify "$(OLD)^{commit}"); dir=build/compare/$$rev; \
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
	new="$$(git rev-parse --short HEAD)$$(git diff --quiet HEAD -- || echo +changes)"; \
	BENCH_OLD_LABEL=$$rev BENCH_NEW_LABEL=$$new bench/compare.sh $$dir $(B)
