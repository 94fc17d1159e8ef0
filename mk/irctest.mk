# `make irctest-full`: the public IRC conformance suite irctest (../shared/irctest, beside the
# project; never copied into it), whole "full" profile (every server test for a typical ircd),
# against the optimised build with the log channels off and the operator its OPER tests use.
# About a minute. `make test` runs the core profile itself (scripts/run-tests.sh).
IRCTEST_ARGS = --http-port 0 --irc-log-channels off --irc-server-name My.Little.Server \
	--irc-oper operuser:operpassword
.PHONY: irctest-full
irctest-full: $(B)/logcasterd
	@test -x ../shared/irctest/run.sh || { echo "irctest-full: no ../shared/irctest"; exit 1; }
	@LOGCASTER_EXTRA_ARGS="$(IRCTEST_ARGS)" ../shared/irctest/run.sh --profile full $(B)/logcasterd
