"""Calls the gateway with boto3's `bedrock-runtime` client, as a user would.

Reads GOODHART_URL and GOODHART_KEY; the key goes as the access key id of boto3's SigV4
signature (botocore sends a Bedrock API key, AWS_BEARER_TOKEN_BEDROCK, only over HTTPS, and
the test gateway listens on plain HTTP). Prints one JSON
list: for each call, the model and the usage boto3 itself reported (Converse's `usage`, the
stream's `metadata` event, Anthropic's `usage` for InvokeModel), and the text.
"""
import json
import os

import boto3
from botocore.exceptions import ClientError, EventStreamError

url, key = os.environ["GOODHART_URL"], os.environ["GOODHART_KEY"]
os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)


def bedrock(access_key):
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                        aws_access_key_id=access_key, aws_secret_access_key="not-checked")


client = bedrock(key)
calls = []
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_BASE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


def record(kind, model, usage, text):
    calls.append({"kind": kind, "model": model, "usage": usage, "text": text})


messages = [{"role": "user", "content": [{"text": "hello " * 300}, {"cachePoint": {"type": "default"}}]}]
reply = client.converse(modelId=SONNET, messages=messages, system=[{"text": "Be terse."}])
record("converse", SONNET, reply["usage"], reply["output"]["message"]["content"][0]["text"])

text, usage = [], None
streamed = client.converse_stream(
    modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "stream please"}]}],
    inferenceConfig={"maxTokens": 10},
)
for event in streamed["stream"]:
    if "contentBlockDelta" in event:
        text.append(event["contentBlockDelta"]["delta"].get("text", ""))
    if "metadata" in event:
        usage = event["metadata"]["usage"]
record("converse_stream", HAIKU, usage, "".join(text))

body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
        "messages": [{"role": "user", "content": "invoke me"}]}
invoked = json.loads(client.invoke_model(modelId="global.anthropic.claude-opus-4-5-20251101-v1:0",
                                         body=json.dumps(body))["body"].read())
record("invoke_model", "global.anthropic.claude-opus-4-5-20251101-v1:0", invoked["usage"],
       invoked["content"][0]["text"])

text, usage = [], {}
streamed = client.invoke_model_with_response_stream(modelId=SONNET_BASE, body=json.dumps(body))
for event in streamed["body"]:
    chunk = json.loads(event["chunk"]["bytes"])
    if chunk["type"] == "message_start":
        usage.update(chunk["message"]["usage"])
    elif chunk["type"] == "message_delta":
        usage.update({k: v for k, v in chunk["usage"].items() if v is not None})
    elif chunk["type"] == "content_block_delta":
        text.append(chunk["delta"].get("text", ""))
    elif chunk["type"] == "message_stop":
        usage["invocation_metrics"] = chunk.get("amazon-bedrock-invocationMetrics")
record("invoke_stream", SONNET_BASE, usage, "".join(text))

stranger = bedrock("gk-not-a-key")
try:
    stranger.converse(modelId=SONNET, messages=messages)
    record("bad_key", SONNET, {"error": None}, "")
except ClientError as e:
    record("bad_key", SONNET, {"error": e.response["Error"]["Code"],
                               "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}, "")

try:
    for event in client.converse_stream(modelId="anthropic.claude-error-mid-v1:0", messages=messages)["stream"]:
        pass
    record("broken_stream", "anthropic.claude-error-mid-v1:0", {"error": None}, "")
except EventStreamError as e:
    record("broken_stream", "anthropic.claude-error-mid-v1:0", {"error": e.response["Error"]["Code"]}, "")

print(json.dumps(calls))
