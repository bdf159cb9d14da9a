"""Prompt bank: built-in fallback, validation, and generation against a local fake of OpenAI's API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from model.prompts.bank import (
    ANSWER_SUFFIX,
    DEFAULT_BANK_PATH,
    PromptBankError,
    bank_from_dict,
    builtin_bank,
    load_bank,
    save_bank,
)


class FakeOpenAI:
    """A real HTTP server on 127.0.0.1 that speaks the chat-completions JSON."""

    def __init__(self, content: str, status: int = 200):
        self.content, self.status, self.requests = content, status, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if fake.status != 200:
                    payload = {"error": {"message": "boom", "type": "server_error"}}
                else:
                    payload = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"] + "-2024-08-06",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": fake.content},
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
                    }
                data = json.dumps(payload).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


REPLY = json.dumps(
    {
        "instruction_prompts": [
            "Would you say a camera took this picture?",
            f"Check the hands and the text. Real or generated? {ANSWER_SUFFIX}",
            "would you say a camera took this picture?",  # duplicate, other case
            "Broken {template",
            "",
        ],
        "explanation_prompts": ["Explain why this looks {verdict}.", "No placeholder here.", "{verdict} {x}"],
    }
)


def test_builtin_bank_is_deterministic_and_the_repo_file_is_valid():
    assert builtin_bank().to_dict() == builtin_bank().to_dict()
    bank = load_bank()  # the versioned file in the repo
    assert DEFAULT_BANK_PATH.is_file()
    assert bank.instruction_prompts[0] == f"Is this image AI-generated? {ANSWER_SUFFIX}"
    assert all(p.endswith(ANSWER_SUFFIX) for p in bank.instruction_prompts)
    assert all(p.count("{verdict}") == 1 for p in bank.explanation_prompts)


def test_generation_against_a_fake_chat_completions_server(tmp_path, monkeypatch):
    from model.prompts.generate import generate_bank

    with FakeOpenAI(REPLY) as fake:
        bank = generate_bank(n_instructions=5, n_explanations=3, api_key="sk-test", base_url=fake.url, version="t1")
    req = fake.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "gpt-4o" and req["body"]["response_format"] == {"type": "json_object"}
    assert bank.source == "openai:gpt-4o-2024-08-06" and bank.version == "t1"
    # validated: suffix added, case-insensitive duplicate and broken templates dropped, default first
    assert bank.instruction_prompts == (
        f"Is this image AI-generated? {ANSWER_SUFFIX}",
        f"Would you say a camera took this picture? {ANSWER_SUFFIX}",
        f"Check the hands and the text. Real or generated? {ANSWER_SUFFIX}",
    )
    assert bank.explanation_prompts == ("Explain why this looks {verdict}.",)
    # cached as versioned JSON that reads back identically (sha256 checked)
    path = save_bank(bank, tmp_path / "bank.json")
    assert load_bank(path) == bank


def test_cli_generate_uses_the_key_from_the_environment(tmp_path, monkeypatch):
    from aidetect.cli import app

    out = tmp_path / "bank.json"
    with FakeOpenAI(REPLY) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        res = CliRunner().invoke(app, ["prompts", "generate", "--out", str(out), "--base-url", fake.url])
    assert res.exit_code == 0, res.output
    assert fake.requests[0]["auth"] == "Bearer sk-env"
    assert json.loads(out.read_text())["source"].startswith("openai:")


def test_cli_without_a_key_writes_the_builtin_bank(tmp_path, monkeypatch):
    from aidetect.cli import app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "bank.json"
    res = CliRunner().invoke(app, ["prompts", "generate", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert load_bank(out) == builtin_bank()


def test_server_errors_and_garbage_become_one_line_errors(tmp_path, monkeypatch):
    from aidetect.cli import app
    from model.prompts.generate import generate_bank

    with FakeOpenAI(REPLY, status=500) as fake, pytest.raises(PromptBankError, match="OpenAI request failed"):
        generate_bank(api_key="sk-test", base_url=fake.url)
    with FakeOpenAI("not json at all") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        res = CliRunner().invoke(
            app, ["prompts", "generate", "--out", str(tmp_path / "b.json"), "--base-url", fake.url]
        )
    assert res.exit_code == 2
    assert res.output.strip().startswith("aidetect: error: the model did not return JSON")
    assert "Traceback" not in res.output


def test_a_hand_edited_bank_is_refused():
    d = builtin_bank().to_dict()
    d["instruction_prompts"].append("Sneaky extra prompt?")
    with pytest.raises(PromptBankError, match="sha256"):
        bank_from_dict(d)
