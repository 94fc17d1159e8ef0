"""logcasterd's options come from one table (src/core/config_table.c): these tests hold --help,
the manual page, --check-config, the configuration file and the sample configuration to it.

- --help and the OPTIONS section of man/logcasterd.8 name the same options with the same
  value names (read from the page's source, so groff is not needed);
- --check-config prints every setting --help lists, in the section the file would use, with
  the default --help states;
- the print-out is a configuration file: read back, it gives the same print-out;
- every option fails alike, naming itself, from a flag and from the file;
- the sample configuration (etc/logcaster.conf) is accepted and its settings take effect.
"""
import os
import re
import shlex
import subprocess

import pytest

from conftest import LOGCASTERD, ROOT, assert_clean_stderr, server_env

ROLES = ("log", "query", "irc", "http")
ACTIONS = {"--help", "--version", "--config", "--check-config"}   # Not settings.
OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][A-Za-z-]*|-[a-z])\b")


def run(*args, timeout=30):
    p = subprocess.run([LOGCASTERD] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=server_env(), stdin=subprocess.DEVNULL)
    assert_clean_stderr(p.stderr, "logcasterd %s" % " ".join(map(str, args)))
    return p


def check_config(*args):
    return run("--check-config", *args)


def parse_ini(text):
    """[(section, key, value)] of --check-config's print-out, in order."""
    out, section = [], ""
    for line in text.splitlines():
        m = re.match(r"^\[(.+)\]$", line.strip())
        if m:
            section = m.group(1)
        elif " = " in line:
            k, _, v = line.partition(" = ")
            out.append((section, k.strip(), v.strip()))
    return out


# -- --help ------------------------------------------------------------------------------------

def help_options():
    """{flag: (value name or None, group heading, help text)} of every option --help lists."""
    p = run("--help")
    assert p.returncode == 0 and p.stderr == "", p
    opts, group, last = {}, None, None
    for line in p.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            group = line
            continue
        m = re.match(r"^  (?:-[a-z], )?(--[A-Za-z][A-Za-z-]*)(?: (\S+))?(?:  +(.*))?$", line)
        if m:
            last = m.group(1)
            opts[last] = [m.group(2), group, m.group(3) or ""]
        elif last and re.match(r"^ {20,}\S", line):
            opts[last][2] += " " + line.strip()
        else:
            last = None
    assert "--bind" in opts and "--ROLE-allow" in opts and "--verbose" in opts, opts
    return {k: tuple(v) for k, v in opts.items()}


def settings(opts):
    """{(section, key): flag} of what --check-config must print for the options --help lists:
    an access option (--ROLE-allow, --log-line-rate) is a key in its roles' sections."""
    out = {}
    for flag, (_, group, _) in opts.items():
        if flag in ACTIONS:
            continue
        if group.startswith("Access"):
            role, _, key = flag[2:].partition("-")
            for r in (ROLES if role == "ROLE" else (role,)):
                out[(r, key)] = flag
        else:
            out[("server", flag[2:])] = flag
    return out


def file_line(flag, value):
    """The INI lines that set what flag sets."""
    for (section, key), f in settings(help_options()).items():
        if f == flag or (f.startswith("--ROLE-") and flag == "--%s-%s" % (section, key)):
            return "[%s]\n%s = %s\n" % (section, key, value)
    raise AssertionError("no INI key for %s" % flag)


# -- the manual page ---------------------------------------------------------------------------

def roff_text(line):
    """A font macro line (.B, .BI, .BR ...) as plain text: arguments joined without spaces."""
    parts = line.split(None, 1)
    args = shlex.split(parts[1].replace("\\", "\\\\")) if len(parts) > 1 else []
    text = re.sub(r"\\f[BIRP]", "", "".join(args))
    return text.replace("\\-", "-").replace("\\", "")


def man_options():
    """{flag: value name or None} of every option the OPTIONS section of logcasterd.8 defines
    (the tags of its .TP and .TQ paragraphs)."""
    with open(os.path.join(ROOT, "man", "logcasterd.8")) as f:
        lines = f.read().splitlines()
    start = lines.index(".SH OPTIONS")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH "))
    opts = {}
    for i in range(start, end):
        if lines[i] in (".TP", ".TQ"):
            tag = roff_text(lines[i + 1])
            for m in re.finditer(r"(--[A-Za-z][A-Za-z-]*)(?: (\S+))?", tag):
                opts[m.group(1)] = m.group(2)
    assert "--bind" in opts and "--ROLE-allow" in opts, opts
    return opts


def test_help_and_man_page_name_the_same_options():
    helped = help_options()
    documented = man_options()
    assert set(helped) - set(documented) == set(), \
        "in --help, not in logcasterd.8: %s" % sorted(set(helped) - set(documented))
    assert set(documented) - set(helped) == set(), \
        "in logcasterd.8, not in --help: %s" % sorted(set(documented) - set(helped))
    # And with the same value: "--bind ADDR" is ".BI \-\-bind " addr"".
    differ = {f: (helped[f][0], documented[f]) for f in helped
              if (helped[f][0] or "").lower() != (documented[f] or "").lower()}
    assert differ == {}, "value names differ (--help, man): %s" % differ


# -- --check-config ----------------------------------------------------------------------------

def test_check_config_prints_every_setting_and_nothing_else():
    want = set(settings(help_options()))
    p = check_config()
    assert p.returncode == 0 and p.stdout.endswith("configuration OK\n"), p
    printed = parse_ini(p.stdout)
    got = {(s, k) for s, k, _ in printed}
    assert want - got == set(), "not printed by --check-config: %s" % sorted(want - got)
    assert got - want == set(), "printed, but not in --help: %s" % sorted(got - want)
    assert len(printed) == len(got), "printed twice: %s" % printed
    assert [s for s, _, _ in printed][0] == "server"


def stated_defaults(opts):
    """{(section, key): value} of the defaults --help states: "(default 64M)" or "(defaults:
    log 100, query 100, irc 20, http 200)"."""
    out = {}
    for (section, key), flag in settings(opts).items():
        text = opts[flag][2]
        m = re.search(r"\(defaults: ([^)]*)\)", text)
        if m:
            per_role = dict(item.split(" ", 1) for item in m.group(1).split(", "))
            out[(section, key)] = per_role[section]
            continue
        m = re.search(r"\(default ([^)]*)\)", text)
        if m:
            out[(section, key)] = m.group(1)
    return out


def same_value(printed, stated):
    """auth = on is printed "on (no token: ...)"."""
    return printed == stated or printed.startswith(stated + " (")


def test_memory_limit_defaults_to_a_quarter_of_the_memory():
    """The block cache takes a quarter of the machine's memory, or of the cgroup's limit when
    that is lower, at least 128M; --memory-limit still sets it."""
    with open("/proc/meminfo") as f:
        ram = int(re.search(r"MemTotal:\s+(\d+) kB", f.read()).group(1)) * 1024
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                v = f.read().strip()
        except OSError:
            continue
        if v.isdigit() and 0 < int(v) < ram:
            ram = int(v)
    want = max(ram // 4 >> 20, 128)
    printed = {(s_, k): v for s_, k, v in parse_ini(check_config().stdout)}
    assert printed[("server", "memory-limit")] == "%dM" % want
    printed = {(s_, k): v for s_, k, v in parse_ini(check_config("--memory-limit", "64M").stdout)}
    assert printed[("server", "memory-limit")] == "64M"


def test_check_config_shows_the_defaults_help_states():
    defaults = stated_defaults(help_options())
    assert len(defaults) >= 40, defaults
    assert defaults[("server", "segment-size")] == "64M"
    assert defaults[("irc", "conn-rate")] == "20"
    printed = {(s, k): v for s, k, v in parse_ini(check_config().stdout)}
    differ = {k: (v, printed[k]) for k, v in defaults.items() if not same_value(printed[k], v)}
    assert differ == {}, "defaults in --help differ from --check-config: %s" % differ


def loadable(text):
    """The print-out as a configuration file. A value in parentheses describes rather than
    sets ("(none)", "(see token in [irc])"), and so does a remark after one ("on (no token:
    ...)"); secrets are not printed at all."""
    out = []
    for line in text.splitlines():
        if line == "configuration OK":
            break
        key, eq, value = line.partition(" = ")
        if eq and (value.startswith("(") or key == "token"):
            continue
        out.append(key + eq + re.sub(r" \([^()]*\)$", "", value) if eq else line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("flags", [
    [],
    ["--bind", "127.0.0.2", "--log-port", "7001", "--listen", "[::1]:7000=http",
     "--listen", "127.0.0.1:7002=log", "--http-max-body", "3M", "--irc-server-name", "irc.test",
     "--data-dir", "/nonexistent/lc", "--memory-limit", "1536M", "--fsync", "always",
     "--retention-age", "36h", "--retention-size", "12345", "--max-line", "1000",
     "--multiline-pattern", "^(Caused by:|\\s)", "--threads", "3", "--reuseport", "-v",
     "--rcvbuf", "64K", "--log-allow", "10.0.0.0/8,::1", "--query-deny", "192.168.7.7",
     "--irc-auth", "off", "--http-conn-rate", "2.5", "--log-max-conns-per-ip", "9",
     "--log-line-rate", "1000"],
], ids=["defaults", "changed"])
def test_the_print_out_reads_back_as_the_same_configuration(tmp_path, flags):
    first = check_config(*flags)
    assert first.returncode == 0, first
    conf = tmp_path / "printed.conf"
    conf.write_text(loadable(first.stdout))
    second = check_config("--config", conf)
    assert second.returncode == 0, (second, conf.read_text())
    assert parse_ini(second.stdout) == parse_ini(first.stdout)


# -- errors name the option, from a flag and from the file -------------------------------------

BAD = [
    # (flag, bad value, words the message must hold)
    ("--log-port", "70000", ["invalid value '70000' for --log-port", "-1..65535"]),
    ("--threads", "0", ["invalid value '0' for --threads", "1..256"]),
    ("--max-line", "65M", ["invalid size '65M' for --max-line", "at most 64M"]),
    ("--memory-limit", "12X", ["invalid size '12X' for --memory-limit", "at least 4M"]),
    ("--retention-age", "5y", ["invalid --retention-age '5y'"]),
    ("--fsync", "sometimes", ["--fsync takes always, batch or never, not 'sometimes'"]),
    ("--query-auth", "maybe", ["--query-auth takes on or off, not 'maybe'"]),
    ("--http-conn-rate", "fast", ["invalid --http-conn-rate 'fast'"]),
    ("--irc-allow", "300.1.1.1", ["--irc-allow: '300.1.1.1' is not an address range"]),
    ("--log-token", "two words", ["--log-token: at most 4 secrets"]),
    ("--listen", "nowhere", ["invalid --listen 'nowhere'"]),
    ("--irc-server-name", "a:b", ["invalid --irc-server-name 'a:b'"]),
    ("--multiline-pattern", "(", ["--multiline-pattern: missing closing parenthesis"]),
]


@pytest.mark.parametrize("flag,value,words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_one_line_that_names_the_option(tmp_path, flag, value, words):
    p = check_config(flag, value)
    lines = p.stderr.splitlines()
    assert p.returncode == 2 and len(lines) == 1, p
    for w in words:
        assert w in lines[0], (w, lines)
    # The same value in the file: the same line, then where it was.
    conf = tmp_path / "bad.conf"
    conf.write_text(file_line(flag, value))
    p = check_config("--config", conf)
    lines = p.stderr.splitlines()
    assert p.returncode == 2 and len(lines) == 2, p
    for w in words:
        assert w in lines[0], (w, lines)
    assert lines[1].startswith("logcasterd: %s:2: invalid value for " % conf), lines


def test_a_flag_without_a_value_takes_yes_or_no_in_the_file(tmp_path):
    conf = tmp_path / "flags.conf"
    conf.write_text("reuseport = on\nmultiline = yes\nverbose = no\nquiet = false\n")
    printed = {(s, k): v for s, k, v in parse_ini(check_config("--config", conf).stdout)}
    assert printed[("server", "reuseport")] == "yes" and printed[("server", "multiline")] == "yes"
    assert printed[("server", "verbose")] == "no" and printed[("server", "quiet")] == "no"
    conf.write_text("reuseport = perhaps\n")
    p = check_config("--config", conf)
    assert p.returncode == 2 and "--reuseport takes yes or no, not 'perhaps'" in p.stderr, p


@pytest.mark.parametrize("line", ["help = yes", "version = yes", "config = other.conf",
                                  "check-config = yes", "[query]\nline-rate = 5"])
def test_actions_and_other_roles_line_rate_are_not_settings(tmp_path, line):
    conf = tmp_path / "x.conf"
    conf.write_text(line + "\n")
    p = check_config("--config", conf)
    assert p.returncode == 2 and "unknown setting" in p.stderr, p


# -- the sample configuration ------------------------------------------------------------------

def test_the_sample_configuration_is_accepted_and_takes_effect():
    path = os.path.join(ROOT, "etc", "logcaster.conf")
    p = check_config("--config", path)
    assert p.returncode == 0 and p.stdout.endswith("configuration OK\n"), p
    assert p.stderr == "", p.stderr
    printed = {(s, k): v for s, k, v in parse_ini(p.stdout)}
    section, n = "server", 0
    with open(path) as f:
        for line in f:
            m = re.match(r"^\[(\w+)\]$", line.strip())
            if m:
                section = m.group(1)
            m = re.match(r"^([a-z-]+) = (.*)$", line.strip())
            if m:
                n += 1
                got = printed[(section, m.group(1))]
                assert same_value(got, m.group(2)), \
                    (section, m.group(1), m.group(2), got)
    assert n >= 8, n
