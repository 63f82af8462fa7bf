"""Calls the gateway with Google's official `google-genai` Python SDK, as a user would.

Reads GOODHART_URL and GOODHART_KEY; prints one JSON list: for each call, the model and the
`usage_metadata` the SDK itself reported (for a stream, its last chunk's), and the text.
"""
import json
import os

from google import genai
from google.genai import errors, types

url, key = os.environ["GOODHART_URL"], os.environ["GOODHART_KEY"]
client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url))
calls = []


def record(kind, model, usage, text):
    calls.append({"kind": kind, "model": model, "usage": usage, "text": text})


def usage_of(response):
    return response.usage_metadata.model_dump(mode="json", exclude_none=True) if response.usage_metadata else None


reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello " * 800)
record("generate", "gemini-2.5-flash", usage_of(reply), reply.text)

text, usage = [], None
for chunk in client.models.generate_content_stream(
    model="gemini-2.5-pro", contents="stream please",
    config=types.GenerateContentConfig(system_instruction="Be terse.", max_output_tokens=10),
):
    text.append(chunk.text or "")
    usage = usage_of(chunk) or usage
record("stream", "gemini-2.5-pro", usage, "".join(text))

counted = client.models.count_tokens(model="gemini-2.5-flash", contents="count me")
record("count_tokens", "gemini-2.5-flash", {"total_tokens": counted.total_tokens}, "")

stranger = genai.Client(api_key="gk-not-a-key", http_options=types.HttpOptions(base_url=url))
try:
    stranger.models.generate_content(model="gemini-2.5-flash", contents="hi")
    record("bad_key", "gemini-2.5-flash", {"error": None}, "")
except errors.ClientError as e:
    record("bad_key", "gemini-2.5-flash", {"error": e.code, "status": e.status}, "")

print(json.dumps(calls))
