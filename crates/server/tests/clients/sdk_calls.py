"""Calls the gateway with the official OpenAI and Anthropic Python SDKs, as a user would.

Reads GOODHART_URL and GOODHART_KEY; prints one JSON object: for each call, the model and
the usage the SDK itself reported (None where the protocol shows none to the client).
"""
import json
import os

import anthropic
import openai

url, key = os.environ["GOODHART_URL"], os.environ["GOODHART_KEY"]
oa = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
calls = []


def record(kind, model, usage, text):
    calls.append({"kind": kind, "model": model, "usage": usage, "text": text})


chat = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello " * 50}])
record("chat", "gpt-4o-mini", chat.usage.model_dump(), chat.choices[0].message.content)

parts, usage = [], None
for chunk in oa.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "stream please"}], stream=True,
    stream_options={"include_usage": True},
):
    parts.extend(c.delta.content or "" for c in chunk.choices)
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
record("chat_stream", "gpt-4o", usage, "".join(parts))

parts, saw_usage = [], False
for chunk in oa.chat.completions.create(
    model="gpt-4.1", messages=[{"role": "user", "content": "stream without usage"}], stream=True,
):
    parts.extend(c.delta.content or "" for c in chunk.choices)
    saw_usage = saw_usage or getattr(chunk, "usage", None) is not None
record("chat_stream_plain", "gpt-4.1", {"saw_usage": saw_usage}, "".join(parts))

response = oa.responses.create(model="gpt-5", input="hello responses", instructions="be brief")
record("responses", "gpt-5", response.usage.model_dump(), response.output_text)

with oa.responses.stream(model="gpt-5-mini", input="stream responses") as stream:
    final = stream.get_final_response()
record("responses_stream", "gpt-5-mini", final.usage.model_dump(), final.output_text)

message = an.messages.create(
    model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello claude"}],
    metadata={"user_id": "user-abc"},
)
record("messages", "claude-sonnet-4-5", message.usage.model_dump(), message.content[0].text)

with an.messages.stream(
    model="claude-haiku-4-5", max_tokens=64,
    system=[{"type": "text", "text": "You are terse. " * 400, "cache_control": {"type": "ephemeral"}}],
    messages=[{"role": "user", "content": "stream claude"}],
) as stream:
    final = stream.get_final_message()
record("messages_stream", "claude-haiku-4-5", final.usage.model_dump(), final.content[0].text)

counted = an.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count me"}])
record("count_tokens", "claude-sonnet-4-5", {"input_tokens": counted.input_tokens}, "")

try:
    openai.OpenAI(base_url=url + "/v1", api_key="gk-wrong", max_retries=0).models.list()
    record("bad_key", "", {"error": None}, "")
except openai.AuthenticationError as e:
    record("bad_key", "", {"error": e.status_code}, str(e))

print(json.dumps(calls))
