#!/usr/bin/env python3
"""Writes a ~/.claude/projects-shaped corpus of Claude Code session logs for benchmarks.

    python3 scripts/gen-claude-logs.py OUT_DIR MEGABYTES [SEED]

Sessions are built from the real fixture session (crates/cli/tests/fixtures/claude-code): every
line kept in shape, fresh session, message and request ids, the usage varied, each response
written as 1-3 lines like Claude Code does; 20 projects, one session file per ~2 MB.
"""
import json
import random
import sys
import uuid
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "crates/cli/tests/fixtures/claude-code/claude_code.session_multiblock.jsonl"


def main():
    out, megabytes = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    template = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    assistant = next(t for t in template if t["type"] == "assistant")
    others = [t for t in template if t["type"] != "assistant"]
    budget, written, session_no = megabytes * 1_000_000, 0, 0
    while written < budget:
        session_no += 1
        project = out / f"-home-dev-src-project-{session_no % 20}"
        project.mkdir(parents=True, exist_ok=True)
        session = str(uuid.UUID(int=rng.getrandbits(128)))
        cwd = f"/home/dev/src/project-{session_no % 20}"
        lines, size = [], 0
        minute = 0
        while size < 2_000_000:
            for other in others[2:4]:
                line = dict(other, sessionId=session, cwd=cwd)
                text = json.dumps(line)
                lines.append(text)
                size += len(text) + 1
            message, request = f"msg_{rng.getrandbits(96):024x}", f"req_{rng.getrandbits(96):024x}"
            usage = dict(assistant["message"]["usage"], input_tokens=rng.randint(1_000, 60_000),
                         output_tokens=rng.randint(1, 4_000), cache_read_input_tokens=rng.randint(0, 200_000))
            minute += 1
            for block in range(rng.randint(1, 3)):
                line = dict(assistant, sessionId=session, cwd=cwd, requestId=request,
                            uuid=str(uuid.UUID(int=rng.getrandbits(128))),
                            timestamp=f"2026-11-{1 + session_no % 28:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:{block:02d}.000Z",
                            message=dict(assistant["message"], id=message, usage=usage))
                text = json.dumps(line)
                lines.append(text)
                size += len(text) + 1
        (project / f"{session}.jsonl").write_text("\n".join(lines) + "\n")
        written += size
    print(f"{session_no} sessions, {written / 1e6:.0f} MB in {out}")


if __name__ == "__main__":
    main()
