"""Runs Fluent Bit and Sluice on the same lines with the same filters, and
prints every record one of them wrote and the other did not: a drop-in's
differences, found by running both rather than by reading Fluent Bit's
source.

Both read the lines with a tail input (from the head, tag `app.log`, each
line a record `{"log": line}`), run the filter sections of FILTERS (a file
of `[FILTER]` sections, Fluent Bit's classic format), and write what they
keep with a stdout output in json_lines. Sluice runs as a FireLens drop-in
of that configuration (with a forward input on a scratch socket, which a
drop-in needs). Records are compared as JSON values, so key order and
`\\u00e9` against `é` are not differences; a record's `date` is compared
only when it is not the time the line was read (a time a parser set).

Found with it, and fixed: the docker parser's times ending in `Z`, Ruby's
regex escapes (`\\d`, `\\w`, `\\s`, `\\h`, `\\<`), grep's first deciding
rule and record-accessor keys, record_modifier's quoted values, days past
a month's end (`31/Feb`), a JSON record's integer `-0`, comma-separated
`Types` (Fluent Bit's own parsers_extra.conf), modify's
`Matching_keys_have_matching_values` on a record with no such key and its
regex conditions on booleans, grep's `Logical_Op` with both `Regex` and
`Exclude` (Fluent Bit refuses it). modify, nest, rewrite_tag and throttle
need a Fluent Bit built with them (FLUENT_BIT=...; the peers' build has
parser, grep and record_modifier). Checked and the same: a
parser's `Time_Zone` (times in summer and winter, in a skipped and a
repeated hour, past 2037, without a year, leniently read).

Differences kept: a parser's time is kept to the millisecond (Fluent Bit
keeps `%L`'s microseconds), floats are written with all their digits, and
a record whose parsed time is before 1970 keeps that time (Fluent Bit's
stdout output writes no such record).

Usage (after ../shared/peers/build-peers.sh, with a release build):
  ~/peers/venv/bin/python scripts/same_as_fluent_bit.py SLUICE FILTERS LINES [PARSERS_FILE]
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

# The peers' build has the filters the side by side needs; FLUENT_BIT names
# another (one built with modify, nest, rewrite_tag and throttle too).
FLUENT_BIT = os.environ.get("FLUENT_BIT", os.path.expanduser("~/peers/fluent-bit-src/build/bin/fluent-bit"))
# How long each runs: long enough for a tail input's first read and a flush.
RUN_SECONDS = 4


def configuration(filters, lines, parsers, forward_socket):
    service = "[SERVICE]\n    Flush 0.2\n    Log_Level error\n"
    if parsers:
        service += "    Parsers_File %s\n" % parsers
    forward = "[INPUT]\n    Name forward\n    unix_path %s\n" % forward_socket if forward_socket else ""
    tail = "[INPUT]\n    Name tail\n    Path %s\n    Read_from_Head On\n    Tag app.log\n" % lines
    output = "[OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n    json_date_format iso8601\n"
    return service + forward + tail + filters + "\n" + output


def records(command, env=None):
    """The JSON records a run printed, until it is stopped."""
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS + 30).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def comparable(record, started):
    """The record as sorted JSON text, without a `date` that is only when
    its line was read."""
    record = dict(record)
    date = record.get("date")
    try:
        at = datetime.datetime.strptime(date, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        at = None  # a record's own `date` key (the output's is overwritten by it)
    if at is not None and abs(at.timestamp() - started) < 120:
        record.pop("date")
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def main():
    sluice, filters_file, lines = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    parsers = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else None
    filters = open(filters_file).read()
    with tempfile.TemporaryDirectory(prefix="sluice-same-") as work:
        fb_conf = os.path.join(work, "fluent-bit.conf")
        sluice_conf = os.path.join(work, "sluice.conf")
        with open(fb_conf, "w") as f:
            f.write(configuration(filters, lines, parsers, None))
        with open(sluice_conf, "w") as f:
            f.write(configuration(filters, lines, parsers, os.path.join(work, "forward.sock")))
        started = time.time()
        theirs = records(["timeout", str(RUN_SECONDS), FLUENT_BIT, "-c", fb_conf])
        env = dict(os.environ, SLUICE_FIRELENS_CONFIG=sluice_conf, SLUICE_ADMIN_LISTEN="",
                   SLUICE_STATS_ENABLED="false", SLUICE_MULTILINE_ENABLED="false")
        ours = records(["timeout", "-s", "INT", str(RUN_SECONDS), sluice, "run"], env)
    theirs = sorted(comparable(r, started) for r in theirs)
    ours = sorted(comparable(r, started) for r in ours)
    only_theirs = [r for r in theirs if r not in ours]
    only_ours = [r for r in ours if r not in theirs]
    print("fluent-bit %d records, sluice %d" % (len(theirs), len(ours)))
    for r in only_theirs:
        print("only fluent-bit:", r)
    for r in only_ours:
        print("only sluice:    ", r)
    sys.exit(1 if only_theirs or only_ours else 0)


if __name__ == "__main__":
    main()
