"""Fetches a Prometheus text exposition and parses it with prometheus_client's
own parser, for Sluice's tests.

Usage: metrics_peer.py URL
Prints one JSON line per sample: {"name", "labels", "value"}; fails if the
page does not parse.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode("utf-8")
print(json.dumps({"content_type": content_type}))
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type}))
