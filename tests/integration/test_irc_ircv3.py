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
