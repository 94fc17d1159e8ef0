"""Integration tests for the IRCv3 extensions of the IRC server (issue 15): SASL PLAIN against
the IRC token and the operator pair, batch with labeled-response, MONITOR (with
extended-monitor), setname, away-notify, account-tag, extended-join, the bot mode and HELP.

Raw sockets through test_irc.py's small client; every read has a deadline.
"""
import base64

from conftest import HOST  # noqa: F401  (the fixtures' address)
from test_irc import Irc, irc, numerics, parse, srv, uniq  # noqa: F401  (fixtures)


def plain(authcid, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, authcid, password)).encode()).decode()


def sasl_start(c, nick):
    """CAP LS 302 (checks sasl=PLAIN), REQ sasl, NICK/USER, AUTHENTICATE PLAIN up to '+'."""
    c.send("CAP LS 302")
    line, _ = c.expect(r" CAP \S+ LS ")
    assert "sasl=PLAIN" in parse(line)[3][-1].split(), line
    c.send("CAP REQ :sasl")
    c.expect(r" CAP \S+ ACK :sasl")
    c.send("NICK " + nick)
    c.send("USER u 0 * :Real " + nick)
    c.nick = nick
    c.send("AUTHENTICATE PLAIN")
    c.expect(r"^AUTHENTICATE \+$")


# ----------------------------------------------------------------------------------------
# SASL.

def test_sasl_plain_with_the_irc_token(server):
    s = server("--irc-token", "t0ken", "--irc-oper", "boss:hunter2")
    ok = Irc(s.irc_port)
    try:
        sasl_start(ok, "sasl1")
        ok.send("AUTHENTICATE " + plain("alice", "t0ken"))
        params = ok.expect_num(900)
        assert params[1] == "alice", params  # The account: the authcid.
        ok.expect_num(903)
        ok.send("AUTHENTICATE PLAIN")  # Once is enough.
        ok.expect_num(907)
        ok.send("CAP END")  # No PASS needed: SASL proved the secret.
        ok.expect_num(1)
        ok.send("WHOIS sasl1")
        assert ok.expect_num(330)[:2] == ["sasl1", "alice"]
        ok.send("WHO sasl1 %na")
        assert ok.expect_num(354) == ["sasl1", "alice"]
    finally:
        ok.close()

    # The operator pair logs in too, as the operator's name (without +o).
    op = Irc(s.irc_port)
    try:
        sasl_start(op, "sasl2")
        op.send("AUTHENTICATE " + plain("boss", "hunter2"))
        assert op.expect_num(900)[1] == "boss"
        op.send("CAP END")
        op.expect_num(1)
        op.send("MODE sasl2")
        assert "o" not in op.expect_num(221)[0]
    finally:
        op.close()

    # A wrong password: 904, and registration then fails like a missing PASS.
    bad = Irc(s.irc_port)
    try:
        sasl_start(bad, "sasl3")
        bad.send("AUTHENTICATE " + plain("alice", "nope"))
        bad.expect_num(904)
        bad.send("AUTHENTICATE SCRAM-SHA-256")  # Unknown mechanism: 908 names PLAIN.
        assert bad.expect_num(908)[0] == "PLAIN"
        bad.expect_num(904)
        bad.send("AUTHENTICATE PLAIN")
        bad.expect(r"^AUTHENTICATE \+$")
        bad.send("AUTHENTICATE *")  # Abort.
        bad.expect_num(906)
        bad.send("CAP END")
        lines = bad.drain_until_closed()
        assert "464" in numerics(lines) and "001" not in numerics(lines), lines
    finally:
        bad.close()

    # PASS keeps working.
    p = Irc(s.irc_port)
    try:
        assert "001" in numerics(p.register("passer", password="t0ken"))
    finally:
        p.close()


def test_sasl_without_a_token_accepts_only_the_operator(server):
    s = server("--irc-oper", "boss:hunter2")
    c = Irc(s.irc_port)
    try:
        sasl_start(c, "sasl4")
        # No --irc-token: any password would prove nothing, so only the operator pair logs in.
        c.send("AUTHENTICATE " + plain("alice", "anything"))
        c.expect_num(904)
        c.send("AUTHENTICATE PLAIN")
        c.expect(r"^AUTHENTICATE \+$")
        # An authzid other than the authcid is refused.
        c.send("AUTHENTICATE " + plain("boss", "hunter2", authzid="other"))
        c.expect_num(904)
        c.send("AUTHENTICATE PLAIN")
        c.expect(r"^AUTHENTICATE \+$")
        c.send("AUTHENTICATE " + plain("boss", "hunter2"))
        c.expect_num(903)
        c.send("CAP END")
        c.expect_num(1)
    finally:
        c.close()


def test_account_tag_and_extended_join(server):
    s = server("--irc-token", "t0ken")
    a, b = Irc(s.irc_port), Irc(s.irc_port)
    try:
        sasl_start(a, "acct1")
        a.send("AUTHENTICATE " + plain("carol", "t0ken"))
        a.expect_num(903)
        a.send("CAP END")
        a.expect_num(376)
        b.register("acct2", caps=["account-tag", "extended-join"], password="t0ken")
        b.join("#acct")
        a.send("JOIN #acct")
        line, _ = b.expect(r"JOIN #acct")
        assert parse(line)[3] == ["#acct", "carol", "Real acct1"], line
        a.send("PRIVMSG #acct :hello")
        line, _ = b.expect(r"PRIVMSG #acct :hello")
        assert parse(line)[0].get("account") == "carol", line
    finally:
        a.close()
        b.close()


# ----------------------------------------------------------------------------------------
# batch and labeled-response.

def test_labeled_response_round_trip(irc):
    a = irc(caps=["batch", "labeled-response", "echo-message"])
    b = irc()
    # One line of answer: the line itself carries the label.
    a.send("@label=one PING :x")
    line, _ = a.expect(r" PONG ")
    assert parse(line)[0] == {"label": "one"}, line
    # No answer at all: an ACK with the label.
    a.send("@label=two PONG :x")
    line, _ = a.expect(r" ACK$")
    assert parse(line)[0] == {"label": "two"}, line
    # Several lines: one labeled-response batch around them, each line in it.
    chan = "#" + uniq("lab")
    a.send("@label=three JOIN " + chan)
    start, _ = a.expect(r" BATCH \+")
    tags, _, _, params = parse(start)
    assert tags == {"label": "three"} and params[1] == "labeled-response", start
    ref = params[0][1:]
    end, inside = a.expect(r" BATCH -" + ref + "$")
    assert [parse(l)[2] for l in inside][:1] == ["JOIN"], inside
    assert "366" in numerics(inside), inside
    assert all(parse(l)[0].get("batch") == ref for l in inside), inside
    # A message: the recipient's copy has no label, the echo has it.
    a.send("@label=four PRIVMSG %s :hi" % b.nick)
    line, _ = b.expect(r"PRIVMSG %s :hi" % b.nick)
    assert "label" not in parse(line)[0], line
    line, _ = a.expect(r"PRIVMSG %s :hi" % b.nick)
    assert parse(line)[0] == {"label": "four"}, line
    # Without the capability a label is ignored.
    b.send("@label=five PING :y")
    line, _ = b.expect(r" PONG ")
    assert not line.startswith("@"), line


# ----------------------------------------------------------------------------------------
# MONITOR, away-notify, setname, bot mode.

def test_monitor_online_offline_list_and_limit(irc, srv):
    w = irc()
    nick = uniq("mon")
    w.send("MONITOR + %s,*!*@*" % nick)  # The mask is ignored: nicks only.
    assert w.expect_num(731) == [nick]
    t = Irc(srv.irc_port)
    try:
        t.register(nick)
        assert w.expect_num(730)[0].startswith(nick + "!")
        t.send("NICK " + nick.upper())  # A change of case: no news.
        t.send("NICK " + nick + "x")
        assert w.expect_num(731) == [nick.upper()]
        t.send("NICK " + nick)
        assert w.expect_num(730)[0].startswith(nick + "!")
        w.send("MONITOR L")
        assert w.expect_num(732) == [nick]
        w.expect_num(733)
        w.send("MONITOR S")
        w.expect_num(730)
        t.send("QUIT :bye")
        assert w.expect_num(731) == [nick]
    finally:
        t.close()
    w.send("MONITOR C")
    w.send("MONITOR L")
    lines = w.sync()
    assert numerics(lines) == ["733"], lines
    w.send("MONITOR + " + ",".join("m%d" % i for i in range(101)))
    params = w.expect_num(734)
    assert params[:2] == ["100", "m100"], params
    # ISUPPORT says so.
    x = Irc(srv.irc_port)
    try:
        welcome = x.register(uniq("i"))
        assert any("MONITOR=100" in l and "BOT=B" in l for l in welcome), welcome
    finally:
        x.close()


def test_away_notify_and_setname(irc):
    a = irc(caps=["away-notify", "setname"])
    b = irc(caps=["setname"])
    chan = "#" + uniq("aw")
    a.join(chan)
    b.join(chan)
    b.send("AWAY :lunch")
    line, _ = a.expect(r" AWAY ")
    assert parse(line)[1].startswith(b.nick + "!") and parse(line)[3] == ["lunch"], line
    b.send("AWAY")
    line, _ = a.expect(r" AWAY")
    assert parse(line)[3] == [], line
    b.send("SETNAME :New Name")
    line, _ = b.expect(r" SETNAME ")  # The setter hears it too.
    assert parse(line)[3] == ["New Name"], line
    line, _ = a.expect(r" SETNAME ")
    assert parse(line)[1].startswith(b.nick + "!"), line
    a.send("WHOIS " + b.nick)
    assert a.expect_num(311)[-1] == "New Name"
    b.send("SETNAME :" + "x" * 200)
    b.expect(r" FAIL SETNAME INVALID_REALNAME ")


def test_bot_mode_whois_who_and_tag(irc):
    bot = irc()
    u = irc(caps=["message-tags"])
    bot.send("MODE %s +B" % bot.nick)
    bot.expect(r" MODE %s :?\+B" % bot.nick)
    u.send("WHOIS " + bot.nick)
    u.expect_num(335)
    u.send("WHO " + bot.nick)
    assert "B" in u.expect_num(352)[5]
    bot.send("PRIVMSG %s :beep" % u.nick)
    line, _ = u.expect(r"PRIVMSG %s :beep" % u.nick)
    assert "bot" in parse(line)[0], line


def test_help(irc):
    c = irc()
    c.send("HELP PRIVMSG")
    assert c.expect_num(704)[0] == "PRIVMSG"
    c.expect_num(706)
    c.send("HELP NOSUCHTHING")
    c.expect_num(524)


# ----------------------------------------------------------------------------------------
# draft/multiline.

ML_CAPS = ["batch", "draft/multiline", "message-tags", "server-time", "echo-message",
           "labeled-response"]


def send_batch(c, ref, target, lines, label=None):
    """BATCH +ref draft/multiline target, the lines ((text, concat)), BATCH -ref."""
    c.send("%sBATCH +%s draft/multiline %s" % ("@label=%s " % label if label else "", ref, target))
    for text, concat in lines:
        c.send("@batch=%s%s PRIVMSG %s :%s" % (
            ref, ";draft/multiline-concat" if concat else "", target, text))
    c.send("BATCH -" + ref)


def test_multiline_cap_value(srv):
    c = Irc(srv.irc_port)
    try:
        c.send("CAP LS 302")
        line, _ = c.expect(r" CAP \S+ LS ")
        assert "draft/multiline=max-bytes=4096,max-lines=32" in parse(line)[3][-1].split(), line
    finally:
        c.close()


def test_multiline_batch_to_a_client_with_the_cap_and_one_without(irc):
    a = irc(caps=ML_CAPS)
    b = irc(caps=["batch", "draft/multiline", "message-tags", "server-time"])
    c = irc(caps=["message-tags", "server-time"])
    plain = irc()
    chan = "#" + uniq("ml")
    for x in (a, b, c, plain):
        x.join(chan)
    for x in (a, b, c):
        x.sync()
    send_batch(a, "r1", chan, [("hello", False), ("", False), ("how is ", False),
                               ("everyone?", True)], label="L1")
    # The sender's echo: the batch, the label on its opening line only.
    start, _ = a.expect(r" BATCH \+")
    tags, prefix, _, params = parse(start)
    assert tags.get("label") == "L1" and params[1:] == ["draft/multiline", chan], start
    assert prefix.startswith(a.nick + "!") and tags.get("msgid") and tags.get("time"), start
    ref = params[0][1:]
    _, inside = a.expect(r" BATCH -" + ref + "$")
    assert [parse(l)[3] for l in inside] == [[chan, "hello"], [chan, ""], [chan, "how is "],
                                             [chan, "everyone?"]], inside
    assert all("label" not in parse(l)[0] and "msgid" not in parse(l)[0] for l in inside), inside
    assert "draft/multiline-concat" in parse(inside[3])[0], inside
    msgid = tags["msgid"]
    # A client with the capability: the same batch, the same msgid.
    bstart, _ = b.expect(r" BATCH \+")
    btags, _, _, bparams = parse(bstart)
    assert btags.get("msgid") == msgid and "label" not in btags, bstart
    _, binside = b.expect(r" BATCH -" + bparams[0][1:] + "$")
    assert [parse(l)[3][1] for l in binside] == ["hello", "", "how is ", "everyone?"], binside
    assert all(parse(l)[0].get("batch") == bparams[0][1:] for l in binside), binside
    # Without it: the non-blank lines as they were sent, the msgid on the first only.
    got = [c.expect(r"PRIVMSG %s :" % chan)[0] for _ in range(3)]
    assert [parse(l)[3][1] for l in got] == ["hello", "how is ", "everyone?"], got
    assert [parse(l)[0].get("msgid") for l in got] == [msgid, None, None], got
    assert all("draft/multiline-concat" not in parse(l)[0] and "batch" not in parse(l)[0]
               for l in got), got
    got = [plain.expect(r"PRIVMSG %s :" % chan)[0] for _ in range(3)]
    assert [l.split(" :", 1)[1] for l in got] == ["hello", "how is ", "everyone?"], got
    assert not any(l.startswith("@") for l in got), got
    # Nothing more: no BATCH for the fallback clients.
    assert not [l for l in c.sync() + plain.sync() if "BATCH" in l or "PRIVMSG" in l]


def test_multiline_private_message_and_ack_without_echo(irc):
    a = irc(caps=["batch", "draft/multiline", "labeled-response"])
    b = irc(caps=["batch", "draft/multiline"])
    send_batch(a, "p1", b.nick, [("one", False), ("two", False)], label="L2")
    line, _ = a.expect(r" ACK$")
    assert parse(line)[0] == {"label": "L2"}, line
    start, _ = b.expect(r" BATCH \+")
    ref = parse(start)[3][0][1:]
    _, inside = b.expect(r" BATCH -" + ref + "$")
    assert [parse(l)[3] for l in inside] == [[b.nick, "one"], [b.nick, "two"]], inside


def test_multiline_fail_codes(irc):
    a = irc(caps=ML_CAPS)
    watcher = irc()
    chan = "#" + uniq("mlf")
    a.join(chan)
    watcher.join(chan)
    a.sync()

    def fail():
        line, _ = a.expect(r" FAIL BATCH ")
        return parse(line)[3][1:-1]

    # max-lines: the 33rd line fails at once; the rest of the batch is dropped.
    a.send("BATCH +x1 draft/multiline " + chan)
    for i in range(34):
        a.send("@batch=x1 PRIVMSG %s :line %d" % (chan, i))
    assert fail() == ["MULTILINE_MAX_LINES", "32"]
    a.send("BATCH -x1")
    # max-bytes: 11 lines of 400 bytes are over 4096.
    a.send("BATCH +x2 draft/multiline " + chan)
    for i in range(11):
        a.send("@batch=x2 PRIVMSG %s :%s" % (chan, "x" * 400))
    assert fail() == ["MULTILINE_MAX_BYTES", "4096"]
    a.send("BATCH -x2")
    # A line to another target (a fresh sender: the one above sent 50 lines at once).
    a = irc(caps=ML_CAPS)
    a.join(chan)
    a.sync()
    a.send("BATCH +x3 draft/multiline " + chan)
    a.send("@batch=x3 PRIVMSG #elsewhere :hi")
    assert fail() == ["MULTILINE_INVALID_TARGET", chan, "#elsewhere"]
    a.send("BATCH -x3")
    # Invalid: a blank line concatenated, a line of another batch, only blank lines, an
    # unknown batch closed, and a batch opened without the capability.
    send_batch(a, "x4", chan, [("hi", False), ("", True)])
    assert fail() == ["MULTILINE_INVALID"]
    a.send("BATCH +x5 draft/multiline " + chan)
    a.send("@batch=zz PRIVMSG %s :hi" % chan)
    assert fail() == ["MULTILINE_INVALID"]
    a.send("BATCH -x5")
    send_batch(a, "x6", chan, [("", False), ("", False)])
    assert fail() == ["MULTILINE_INVALID"]
    a.send("BATCH -nope")
    assert fail() == ["MULTILINE_INVALID"]
    watcher.send("BATCH +y draft/multiline " + chan)
    line, _ = watcher.expect(r" FAIL BATCH ")
    assert parse(line)[3][1] == "MULTILINE_INVALID", line
    # None of it reached the channel, and the sender was not taken for a flood.
    a.sync()
    assert not [l for l in watcher.sync() if "PRIVMSG" in l]
    send_batch(a, "ok", chan, [("after", False)])
    line, _ = watcher.expect(r"PRIVMSG %s :" % chan)
    assert line.endswith(":after"), line


def test_multi_line_log_entry_is_one_batch(server):
    """An entry joined from several lines (--multiline) reaches a draft/multiline client as one
    batch, a line of the entry per PRIVMSG; others get it as today, one line with the escaped
    line feeds."""
    s = server("--multiline")
    ml, old = Irc(s.irc_port), Irc(s.irc_port)
    try:
        ml.register(uniq("ml"), caps=["batch", "draft/multiline", "message-tags"])
        old.register(uniq("old"), caps=[])
        for c in (ml, old):
            c.join("#logs-all")
            c.sync()
        long = "y" * 700
        before = s.count()
        s.send(["ERROR boom " + long, "\tat a.b(B.java:1)", "\tat c.d(D.java:2)", "INFO next"])
        s.wait_count(before + 2, timeout=10)
        start, _ = ml.expect(r" BATCH \+\S+ draft/multiline #logs-all$")
        tags, prefix, _, params = parse(start)
        assert prefix == "LogBot!log@system" and tags["msgid"].startswith("lc-"), start
        assert tags.get("+logcaster/level") == "ERROR", start
        ref = params[0][1:]
        _, inside = ml.expect(r" BATCH -%s$" % ref)
        assert all(parse(l)[0].get("batch") == ref and parse(l)[2] == "PRIVMSG"
                   for l in inside), inside
        texts = [parse(l)[3][1] for l in inside]
        concat = ["draft/multiline-concat" in parse(l)[0] for l in inside]
        assert concat == [False, True, False, False], inside  # The long first line: 2 pieces.
        assert texts[0].startswith("[") and "ERROR boom y" in texts[0], texts
        assert texts[0] + texts[1] == texts[0].split(" ERROR")[0] + " ERROR boom " + long
        assert texts[2:] == ["\\x09at a.b(B.java:1)", "\\x09at c.d(D.java:2)"], texts
        line, _ = ml.expect(r"PRIVMSG #logs-all :.* INFO next$")
        assert "batch" not in parse(line)[0], line  # A one-line entry: no batch.
        # Without the capability: the entry as before, its line feeds escaped.
        got, _ = old.expect(r"PRIVMSG #logs-all :.*boom")
        rest = [old.expect(r"PRIVMSG #logs-all :")[0] for _ in range(2)]
        assert "BATCH" not in "".join([got] + rest)
        assert "\\x0a\\x09at c.d(D.java:2)" in rest[-1] + rest[0], rest
    finally:
        ml.close()
        old.close()
