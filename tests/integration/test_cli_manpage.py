"""`logcaster --help` and man/logcaster.1 agree: the same commands, and every long option that
either documents (global, per command, output options) is in the other."""
import os
import re
import subprocess

from conftest import LOGCASTER, ROOT

MAN = os.path.join(ROOT, "man", "logcaster.1")
COMPLETION = os.path.join(ROOT, "etc", "logcaster.bash-completion")


def helptext(*args):
    r = subprocess.run([LOGCASTER] + list(args), capture_output=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout.decode()


def commands_in_help():
    text = helptext("--help")
    block = text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def long_options(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def man_source():
    with open(MAN) as f:
        return f.read()


def test_same_commands():
    man_cmds = [c.replace("\\-", "-") for c in re.findall(r"^\.SS (\S+)$", man_source(), re.M)]
    assert sorted(man_cmds) == sorted(commands_in_help())


def test_same_options_per_command():
    src = man_source()
    man = src.replace("\\-", "-")
    sections = dict(re.findall(r"^\.SS (\S+)\n(.*?)(?=^\.SS |^\.SH )", man, re.M | re.S))
    global_part = man.split(".SH GLOBAL OPTIONS", 1)[1].split(".SH COMMANDS", 1)[0]
    glob = long_options(helptext("--help").split("Global options", 1)[1].split("\n\n", 1)[0])
    assert glob == long_options(global_part.split(".SH OUTPUT OPTIONS")[0]), \
        "global options differ: help %s, man %s" % (sorted(glob), sorted(long_options(global_part)))
    output_opts = long_options(global_part.split(".SH OUTPUT OPTIONS")[1])
    for cmd in commands_in_help():
        own = long_options(helptext(cmd, "--help").split("Global options", 1)[0]) - glob
        documented = long_options(sections[cmd])
        if "output options" in sections[cmd]:
            documented |= output_opts
        # Options named in the text of another command's section ("As for query") count.
        assert own <= documented | long_options(man), (cmd, sorted(own - documented))
        missing = {o for o in documented - own if o not in glob}
        assert not missing, "man page documents %s for %s, --help does not" % (sorted(missing), cmd)
        assert own <= documented, "%s --help has %s, its man section does not" % (
            cmd, sorted(own - documented))


def complete(words):
    """What the bash completion offers for the command line words (the last being completed)."""
    script = 'source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _logcaster; printf "%%s\\n" "${COMPREPLY[@]}"' % (
        COMPLETION, " ".join("'%s'" % w for w in words), len(words) - 1)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_bash_completion_knows_every_command_and_option():
    cmds = commands_in_help()
    assert set(cmds) <= complete(["logcaster", ""])
    assert complete(["logcaster", "ta"]) == {"tail"}
    glob = long_options(helptext("--help").split("Global options", 1)[1].split("\n\n", 1)[0])
    assert glob <= complete(["logcaster", "--"])
    for cmd in cmds:
        own = long_options(helptext(cmd, "--help").split("Global options", 1)[0])
        offered = complete(["logcaster", "--host", "h", cmd, "--"])
        assert own | glob <= offered, (cmd, sorted((own | glob) - offered))
    assert complete(["logcaster", "query", "--output", ""]) == {"text", "json", "logfmt", "raw"}
    assert complete(["logcaster", "tail", "--color", "a"]) == {"auto", "always"}
