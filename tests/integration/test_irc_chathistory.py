"""Integration tests for IRCv3 draft/chathistory on log channels (issue 15, item 3): the
capability and ISUPPORT tokens; CHATHISTORY LATEST, BEFORE, AFTER, AROUND and BETWEEN answered
from the store with msgid and timestamp references, checked against the lines sent (ids,
order, limits, paging without gaps or duplicates); TARGETS; the FAIL codes; msgids on the live
lines and the join replay; no replay for a client with the capability, the replay as before
for one without; and a long answer paced through a small --out-limit.

Raw sockets through test_irc.py's small client; every read has a deadline.
"""
import time

from conftest import HOST  # noqa: F401  (the fixtures' address)
from test_irc import Irc, irc, parse, srv, uniq  # noqa: F401  (fixtures)

CAPS = ["batch", "server-time", "message-tags", "labeled-response", "draft/chathistory"]
BASE = 1714564800  # 2024-05-01 12:00:00 UTC; entries get BASE + i seconds.


def iso(sec):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(sec))


def filtered_channel(c, tag):
    """A custom log channel whose filter is tag, joined by c."""
    chan = "#logs-" + uniq("h")
    c.join(chan)
    c.send("PRIVMSG %s :!logfilter %s" % (chan, tag))
    c.expect(r" TOPIC %s :Live logs matching: %s " % (chan, tag))
    return chan


def history(c, cmd, label=None):
    """Send a CHATHISTORY command; return (BATCH + params, tags of the start line, the batch's
    PRIVMSGs as (tags, text)). Live lines outside the batch are skipped. Paced to stay under
    the input flood limit (10 lines a second after a burst of 40)."""
    time.sleep(0.1)
    c.send(("@label=%s " % label if label else "") + "CHATHISTORY " + cmd)
    line, _ = c.expect(lambda l: parse(l)[2] == "BATCH" and parse(l)[3][0].startswith("+"),
                       what="BATCH +")
    tags, _, _, params = parse(line)
    ref = params[0][1:]
    rows = []
    while True:
        l = c.readline()
        t, prefix, cmd_, p = parse(l)
        if cmd_ == "BATCH" and p == ["-" + ref]:
            return params, tags, rows
        if t.get("batch") == ref:
            assert cmd_ == "PRIVMSG" and prefix == "LogBot!log@system", l
            rows.append((t, p[1]))


def msgids(rows):
    return [t["msgid"] for t, _ in rows]


def ids(rows):
    out = []
    for t, _ in rows:
        assert t["msgid"] == "lc-" + t["+logcaster/id"], t
        out.append(int(t["+logcaster/id"]))
    return out


def test_cap_and_isupport(srv):
    a = Irc(srv.irc_port)
    try:
        a.send("CAP LS 302")
        line, _ = a.expect(r" CAP \S+ LS ")
        assert "draft/chathistory" in parse(line)[3][-1].split(), line
        welcome = a.register(uniq("hc"), caps=[])
        tokens = [t for l in welcome if parse(l)[2] == "005" for t in parse(l)[3][1:-1]]
        assert "CHATHISTORY=1000" in tokens, tokens
        assert "MSGREFTYPES=msgid,timestamp" in tokens, tokens
    finally:
        a.close()


def test_subcommands_against_the_sent_lines(irc, srv):
    c = irc(uniq("hs"), caps=CAPS)
    tag = uniq("hist")
    chan = filtered_channel(c, tag)
    sent = [srv.log("INFO", BASE + i, "%s message %d" % (tag, i)) for i in range(10)]
    c.sync()
    T = [iso(BASE + i) for i in range(10)]

    params, tags, rows = history(c, "LATEST %s * 100" % chan, label="l1")
    assert params[1:] == ["chathistory", chan] and tags.get("label") == "l1", (params, tags)
    assert ids(rows) == sent
    assert [t["time"] for t, _ in rows] == T
    assert [text.endswith("%s message %d" % (tag, i)) for i, (_, text) in enumerate(rows)] == \
        [True] * 10
    assert ids(history(c, "LATEST %s * 3" % chan)[2]) == sent[-3:]
    assert ids(history(c, "LATEST %s msgid=lc-%d 100" % (chan, sent[4]))[2]) == sent[5:]
    assert ids(history(c, "LATEST %s timestamp=%s 100" % (chan, T[4]))[2]) == sent[5:]
    assert ids(history(c, "LATEST %s msgid=lc-%d 2" % (chan, sent[4]))[2]) == sent[-2:]

    assert ids(history(c, "BEFORE %s msgid=lc-%d 100" % (chan, sent[6]))[2]) == sent[:6]
    assert ids(history(c, "BEFORE %s msgid=lc-%d 2" % (chan, sent[6]))[2]) == sent[4:6]
    assert ids(history(c, "BEFORE %s timestamp=%s 100" % (chan, T[6]))[2]) == sent[:6]
    assert ids(history(c, "BEFORE %s timestamp=%s 2" % (chan, T[6]))[2]) == sent[4:6]

    assert ids(history(c, "AFTER %s msgid=lc-%d 100" % (chan, sent[3]))[2]) == sent[4:]
    assert ids(history(c, "AFTER %s msgid=lc-%d 3" % (chan, sent[3]))[2]) == sent[4:7]
    assert ids(history(c, "AFTER %s timestamp=%s 100" % (chan, T[3]))[2]) == sent[4:]
    assert ids(history(c, "AFTER %s timestamp=%s 3" % (chan, T[3]))[2]) == sent[4:7]

    assert ids(history(c, "AROUND %s msgid=lc-%d 1" % (chan, sent[7]))[2]) == [sent[7]]
    assert ids(history(c, "AROUND %s msgid=lc-%d 3" % (chan, sent[7]))[2]) == sent[6:9]
    assert ids(history(c, "AROUND %s timestamp=%s 3" % (chan, T[7]))[2]) == sent[6:9]
    assert ids(history(c, "AROUND %s msgid=lc-%d 100" % (chan, sent[7]))[2]) == sent

    for a, b in (("msgid=lc-%d" % sent[0], "msgid=lc-%d" % sent[-1]),
                 ("timestamp=" + T[0], "timestamp=" + T[-1])):
        assert ids(history(c, "BETWEEN %s %s %s 100" % (chan, a, b))[2]) == sent[1:-1]
        assert ids(history(c, "BETWEEN %s %s %s 100" % (chan, b, a))[2]) == sent[1:-1]
        assert ids(history(c, "BETWEEN %s %s %s 3" % (chan, a, b))[2]) == sent[1:4]
        assert ids(history(c, "BETWEEN %s %s %s 3" % (chan, b, a))[2]) == sent[-4:-1]
        assert ids(history(c, "BETWEEN %s %s %s 3" % (chan, a, a))[2]) == []

    # Paging back from the newest with msgids: every line once, none missed.
    page = history(c, "LATEST %s * 3" % chan)[2]
    seen = ids(page)
    while page:
        page = history(c, "BEFORE %s %s 3" % (chan, "msgid=" + page[0][0]["msgid"]))[2]
        seen = ids(page) + seen
    assert seen == sent
    # And forward from before the first.
    page, seen = history(c, "AFTER %s timestamp=%s 4" % (chan, iso(BASE - 1)))[2], []
    while page:
        seen += ids(page)
        page = history(c, "AFTER %s %s 4" % (chan, "msgid=" + page[-1][0]["msgid"]))[2]
    assert seen == sent

    # The case of the name and the subcommand do not matter; limits above the maximum are
    # served as the maximum.
    assert ids(history(c, "latest %s * 5000" % chan.upper())[2]) == sent

    # Without batch: the same lines, no BATCH around them.
    plain = irc(uniq("hp"), caps=["draft/chathistory", "message-tags"])
    plain.send("CHATHISTORY LATEST %s * 2" % chan)
    got = [plain.expect(r"%s message %d$" % (tag, i))[0] for i in (8, 9)]
    assert [parse(l)[0]["msgid"] for l in got] == ["lc-%d" % i for i in sent[-2:]]
    assert not [l for l in plain.sync() if " BATCH " in l]


def test_msgids_on_live_lines_and_replay_only_without_the_cap(irc, srv):
    owner = irc(uniq("ho"), caps=["message-tags"])
    tag = uniq("live")
    chan = filtered_channel(owner, tag)
    sent = [srv.log("WARN", BASE + i, "%s before %d" % (tag, i)) for i in range(3)]
    owner.sync()

    # Without the capability: the replay on join, each line with its msgid.
    old = irc(uniq("hr"), caps=["message-tags"])
    old.send("JOIN " + chan)
    got = [old.expect(r"%s before %d$" % (tag, i))[0] for i in range(3)]
    assert [parse(l)[0]["msgid"] for l in got] == ["lc-%d" % i for i in sent]
    old.sync()
    # With it: no replay; the client asks.
    new = irc(uniq("hn"), caps=CAPS)
    new.send("JOIN " + chan)
    assert not [l for l in new.sync() if " PRIVMSG " in l and tag in l]
    assert ids(history(new, "LATEST %s * 10" % chan)[2]) == sent

    # Live lines carry the msgid that references them.
    live = srv.log("WARN", BASE + 5, "%s live" % tag)
    for c in (old, new, owner):
        line, _ = c.expect(r"%s live$" % tag)
        assert parse(line)[0]["msgid"] == "lc-%d" % live, line
    assert ids(history(new, "BEFORE %s msgid=lc-%d 10" % (chan, live))[2]) == sent


def test_targets(irc, srv):
    c = irc(uniq("ht"), caps=CAPS)
    tag = uniq("tg")
    chan = filtered_channel(c, tag)
    old = 978307200  # 2001-01-01: older than every other entry's time.
    srv.log("ERROR", old, "%s old" % tag)
    srv.log("ERROR", "-", "%s now" % uniq("other"))  # #logs-all's and #logs-error's: now.
    c.sync()

    def targets(a, b, limit=100):
        c.send("CHATHISTORY TARGETS timestamp=%s timestamp=%s %d" % (a, b, limit))
        line, _ = c.expect(r" BATCH \+\S+ draft/chathistory-targets$")
        ref = parse(line)[3][0][1:]
        out = []
        while True:
            t, _, cmd, p = parse(c.readline())
            if cmd == "BATCH" and p == ["-" + ref]:
                return out
            assert cmd == "CHATHISTORY" and p[0] == "TARGETS" and t["batch"] == ref, p
            out.append((p[1], p[2]))

    everything = targets("2000-01-01T00:00:00.000Z", "2200-01-01T00:00:00.000Z")
    names = [n for n, _ in everything]
    assert chan in names and "#logs-all" in names and "#logs-error" in names, everything
    assert everything[0] == (chan, iso(old)), everything  # Oldest newest-entry first.
    assert [w for _, w in everything] == sorted(w for _, w in everything)
    # The window is exclusive and looks at each channel's newest entry only.
    assert targets(iso(old - 1), iso(old + 1)) == [(chan, iso(old))]
    assert targets(iso(old), iso(old + 1)) == []
    assert chan not in [n for n, _ in targets(iso(old + 1), "2200-01-01T00:00:00.000Z")]
    assert len(targets("2000-01-01T00:00:00.000Z", "2200-01-01T00:00:00.000Z", 2)) == 2


def test_errors(irc):
    c = irc(uniq("he"), caps=CAPS)
    other = irc(uniq("hx"))
    other.join("#hist-ordinary")
    c.join("#hist-mine")

    def fail(cmd):
        c.send("CHATHISTORY " + cmd if cmd else "CHATHISTORY")
        line, _ = c.expect(r" FAIL ")
        return parse(line)[3]

    assert fail("")[:3] == ["CHATHISTORY", "NEED_MORE_PARAMS", "CHATHISTORY"]
    assert fail("LATEST #logs-all *")[:3] == ["CHATHISTORY", "NEED_MORE_PARAMS", "LATEST"]
    assert fail("BETWEEN #logs-all msgid=lc-1 10")[1] == "NEED_MORE_PARAMS"
    assert fail("SIDEWAYS #logs-all * 10")[:3] == ["CHATHISTORY", "UNKNOWN_COMMAND", "SIDEWAYS"]
    assert fail("LATEST #nosuchchannel * 10")[:4] == \
        ["CHATHISTORY", "INVALID_TARGET", "LATEST", "#nosuchchannel"]
    assert fail("LATEST #hist-ordinary * 10")[1:4] == ["INVALID_TARGET", "LATEST",
                                                        "#hist-ordinary"]
    assert fail("LATEST nosuchnick * 10")[1] == "INVALID_TARGET"
    assert fail("BEFORE #logs-all * 10")[1:4] == ["INVALID_PARAMS", "BEFORE", "*"]
    assert fail("BEFORE #logs-all msgid=abc 10")[1:4] == ["INVALID_PARAMS", "BEFORE", "msgid=abc"]
    assert fail("BEFORE #logs-all timestamp=yesterday 10")[1] == "INVALID_PARAMS"
    assert fail("LATEST #logs-all * 0")[1:4] == ["INVALID_PARAMS", "LATEST", "0"]
    assert fail("LATEST #logs-all * many")[1] == "INVALID_PARAMS"
    assert fail("BETWEEN #logs-all msgid=lc-1 timestamp=2024-01-01T00:00:00.000Z 10")[1] == \
        "INVALID_PARAMS"
    assert fail("TARGETS * * 10")[1:3] == ["INVALID_PARAMS", "TARGETS"]
    # A labeled error carries the label.
    c.send("@label=e1 CHATHISTORY LATEST #nosuchchannel * 10")
    line, _ = c.expect(r" FAIL ")
    assert parse(line)[0].get("label") == "e1", line

    # An ordinary channel one is on, or a nick, has no stored history: an empty batch.
    for target in ("#hist-mine", other.nick):
        params, _, rows = history(c, "LATEST %s * 10" % target)
        assert params[1:] == ["chathistory", target] and rows == []
    # A log channel with no filter yet: empty too.
    nofilter = "#logs-" + uniq("nofilter")
    c.join(nofilter)
    assert history(c, "LATEST %s * 10" % nofilter)[2] == []


def test_long_answer_is_paced_and_split_entries_keep_one_msgid(server):
    s = server("--out-limit", "16K")
    c = Irc(s.irc_port)
    try:
        c.register(uniq("hl"), caps=CAPS)
        tag = uniq("long")
        chan = filtered_channel(c, tag)
        n = 300
        body = "x" * 1500  # Each entry is split into four PRIVMSGs.
        lines = ["INFO %s %04d %s" % (tag, i, body) for i in range(n)]
        s.send(lines)
        s.wait_count(n, tag, timeout=20)
        c.send("CHATHISTORY LATEST %s * 1000" % chan)
        c.send("PING :after")  # Waits for the whole answer.
        line, _ = c.expect(r" BATCH \+\S+ chathistory ", timeout=10)
        ref = parse(line)[3][0][1:]
        first_pieces, pieces = [], 0
        while True:
            t, _, cmd, p = parse(c.readline(timeout=10))
            if cmd == "BATCH" and p == ["-" + ref]:
                break
            assert cmd == "PRIVMSG" and t["batch"] == ref
            pieces += 1
            if "msgid" in t:
                first_pieces.append(p[1])
            else:
                assert p[1].startswith("[") and " ... " in p[1][:30], p[1][:60]
        assert len(first_pieces) == n and pieces >= 3 * n, (len(first_pieces), pieces)
        assert [int(x.split(" %s " % tag)[1][:4]) for x in first_pieces] == list(range(n))
        t, _, cmd, p = parse(c.readline(timeout=10))
        assert cmd == "PONG" and p[-1] == "after", (cmd, p)
    finally:
        c.close()
