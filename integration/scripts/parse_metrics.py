#!/usr/bin/env python3
"""Parses an OpenMetrics exposition (the file given) with prometheus_client's strict
parser and prints one JSON object per sample: name, labels, value, family type."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type,
                          "name": s.name, "labels": s.labels, "value": s.value}))
