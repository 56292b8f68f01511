"""Reads and changes moto's CloudWatch Logs with boto3, for Sluice's tests.

Usage:
  cloudwatch_peer.py dump ENDPOINT
      One JSON line per log group ({"group", "retention"}) and per event
      ({"group", "stream", "timestamp", "message"}), every stream read from
      its start with GetLogEvents until the forward token stops moving.
  cloudwatch_peer.py create-group ENDPOINT NAME
  cloudwatch_peer.py delete-group ENDPOINT NAME
  cloudwatch_peer.py create-stream ENDPOINT GROUP NAME
  cloudwatch_peer.py s3-put ENDPOINT REGION BUCKET KEY FILE
      Creates the bucket in REGION and puts FILE at KEY (the files
      aws-for-fluent-bit's init image downloads).
"""

import json
import sys

import boto3


def client(endpoint):
    return boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def dump(endpoint):
    logs = client(endpoint)
    for page in logs.get_paginator("describe_log_groups").paginate():
        for group in page["logGroups"]:
            name = group["logGroupName"]
            print(json.dumps({"group": name, "retention": group.get("retentionInDays")}))
            for spage in logs.get_paginator("describe_log_streams").paginate(logGroupName=name):
                for stream in spage["logStreams"]:
                    events(logs, name, stream["logStreamName"])


def events(logs, group, stream):
    token = None
    while True:
        args = dict(logGroupName=group, logStreamName=stream, startFromHead=True, limit=10000)
        if token:
            args["nextToken"] = token
        out = logs.get_log_events(**args)
        for e in out["events"]:
            print(json.dumps({"group": group, "stream": stream,
                              "timestamp": e["timestamp"], "message": e["message"]}))
        if not out["events"] or out["nextForwardToken"] == token:
            return
        token = out["nextForwardToken"]


if __name__ == "__main__":
    command, endpoint = sys.argv[1], sys.argv[2]
    if command == "dump":
        dump(endpoint)
    elif command == "create-group":
        client(endpoint).create_log_group(logGroupName=sys.argv[3])
    elif command == "delete-group":
        client(endpoint).delete_log_group(logGroupName=sys.argv[3])
    elif command == "create-stream":
        client(endpoint).create_log_stream(logGroupName=sys.argv[3], logStreamName=sys.argv[4])
    elif command == "s3-put":
        region, bucket, key, path = sys.argv[3:7]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                          aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        with open(path, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body.read())
    else:
        raise SystemExit("unknown command " + command)
