"""Calls the gateway with the official `openai` SDK's `AzureOpenAI` client, as an Azure user would.

Reads GOODHART_URL and GOODHART_KEY; prints one JSON list: for each call, the deployment, the
usage the SDK itself reported, and the text.
"""
import json
import os

import openai

url, key = os.environ["GOODHART_URL"], os.environ["GOODHART_KEY"]
azure = openai.AzureOpenAI(azure_endpoint=url, api_key=key, api_version="2024-10-21", max_retries=0)
calls = []


def record(kind, deployment, usage, text):
    calls.append({"kind": kind, "deployment": deployment, "usage": usage, "text": text})


chat = azure.chat.completions.create(model="prod-4o", messages=[{"role": "user", "content": "hello " * 40}])
record("chat", "prod-4o", chat.usage.model_dump(), chat.choices[0].message.content)

parts, usage = [], None
for chunk in azure.chat.completions.create(
    model="prod-4o", messages=[{"role": "user", "content": "stream please"}], stream=True,
    stream_options={"include_usage": True},
):
    parts.extend(c.delta.content or "" for c in chunk.choices)
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
record("chat_stream", "prod-4o", usage, "".join(parts))

embedded = azure.embeddings.create(model="prod-4o", input="embed me")
record("embeddings", "prod-4o", embedded.usage.model_dump(), "")

stranger = openai.AzureOpenAI(azure_endpoint=url, api_key="gk-not-a-key", api_version="2024-10-21", max_retries=0)
try:
    stranger.chat.completions.create(model="prod-4o", messages=[{"role": "user", "content": "hi"}])
    record("bad_key", "prod-4o", {"error": None}, "")
except openai.AuthenticationError as e:
    record("bad_key", "prod-4o", {"error": e.status_code}, "")

print(json.dumps(calls))
