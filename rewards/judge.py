"""An LLM judge as a reward component, for open-ended answers no rule can match.

CodeDance's release judged accuracy with an LLM (Qwen2.5-72B-Instruct behind an
OpenAI-compatible server). :class:`JudgeReward` does the same for any such server:
for every trajectory whose task has a known answer it extracts the prediction
with :func:`~codedance.rewards.answers.extract_answer`, fills ``params.prompt``
with the question, the reference answer and the prediction, POSTs
``{endpoint}/chat/completions`` at temperature 0 and reads the reply with
:func:`parse_verdict`: yes/no words, a score in [0, 1] or ``{"score": x}``.

``score_group`` is synchronous, as the reward contract says; the requests of one
group run on a thread pool of ``params.concurrency`` workers sharing one pooled
``httpx.Client``, so it works the same whether or not an event loop is running.
Identical (question, answer, prediction) triples are asked once per group, and
verdicts are kept by a sha256 key in memory and, with ``params.cache``, in a
JSON-lines file that later runs reload. The api key is read from the environment
variable ``params.api_key_env`` when the client is built and is masked in every
message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from codedance.core.errors import CodedanceError, ConfigError
from codedance.rewards.answers import extract_answer
from codedance.rewards.base import RewardComponent, RewardResult
from codedance.runtime.types import Trajectory

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_PROMPT", "JudgeError", "JudgeReward", "parse_verdict"]

log = logging.getLogger(__name__)

DEFAULT_PROMPT = """\
You are grading an answer to a question against the reference answer.

Question: {question}
Reference answer: {answer}
Predicted answer: {prediction}

Is the predicted answer consistent with the reference answer? Judge the meaning, not \
the wording: equal values written differently, equivalent units or formats, the same \
option given by letter or by text, and paraphrases are consistent; a different value, \
a different option, or a hedge between several answers is not. Reply with exactly one \
word: yes or no."""

_PLACEHOLDER = re.compile(r"\{(question|answer|prediction)\}")
_THINKING = re.compile(r"^.*</think>", re.DOTALL)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?|\.\d+")
_WORDS = {"yes": 1.0, "true": 1.0, "correct": 1.0, "no": 0.0, "false": 0.0, "incorrect": 0.0}
_NEGATIONS = frozenset({"not", "isn"})
_RETRY_STATUSES = frozenset({408, 409, 429})
_FALLBACKS = ("error", "zero")


class JudgeError(CodedanceError):
    """The judge could not be asked: unreachable, or it refused after every retry."""


def parse_verdict(reply: str) -> float | None:
    """The score in [0, 1] a judge's ``reply`` gives, or None when it gives none.

    Read in order: anything up to a closing ``</think>`` is dropped; a JSON object's
    ``score`` (a number, a boolean or a verdict word); the first verdict word (yes,
    true, correct / no, false, incorrect; "not correct" is 0); else a lone number
    in [0, 1] ("Score: 0.8"). A number outside [0, 1] is no verdict.
    """
    text = _THINKING.sub("", reply).strip()
    for match in _JSON_OBJECT.finditer(text):
        score = _json_score(match.group())
        if score is not None:
            return score
    tokens = _TOKEN.findall(text.lower())
    for index, token in enumerate(tokens):
        if token in _WORDS:
            negated = index > 0 and tokens[index - 1] in _NEGATIONS
            return 1.0 - _WORDS[token] if negated else _WORDS[token]
    numbers = [float(t) for t in tokens if t[0].isdigit() or t[0] == "."]
    return numbers[0] if len(numbers) == 1 and 0.0 <= numbers[0] <= 1.0 else None


def _json_score(text: str) -> float | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool):
        return float(score)
    if isinstance(score, (int, float)):
        return float(score) if 0.0 <= score <= 1.0 else None
    return parse_verdict(score) if isinstance(score, str) else None


@dataclass(frozen=True)
class _Query:
    """One question to the judge and its cache key."""

    key: str
    model: str
    prompt: str


@dataclass(frozen=True)
class _Verdict:
    """What the judge said: a score, or None when unparsed or (``failed``) unasked."""

    score: float | None
    reply: str = ""
    failed: bool = False


class JudgeReward(RewardComponent):
    """1/0 (or the judge's score in [0, 1]) as an LLM judge rates the final answer.

    Parts: ``judged`` and ``cached`` (the verdict came from the cache); ``unparsed``
    when the reply held no verdict (scored 0); ``unscored`` for tasks without an
    answer; ``judge_error`` when the judge failed and ``fallback`` is ``zero``.
    """

    name: ClassVar[str] = "llm_judge"
    defaults: ClassVar[dict[str, Any]] = {
        "endpoint": None,
        "model": "auto",
        "api_key_env": "OPENAI_API_KEY",
        "timeout_s": 60.0,
        "max_retries": 3,
        "backoff_s": 0.5,
        "cache": None,
        "prompt": DEFAULT_PROMPT,
        "concurrency": 16,
        "fallback": "error",
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.endpoint, self.prompt = _check_params(self.params)
        self.concurrency = int(self.params["concurrency"])
        self.model: str | None = None if self.params["model"] == "auto" else self.params["model"]
        self.cache_path = None if self.params["cache"] is None else Path(self.params["cache"])
        self._verdicts: dict[str, float] = {}
        self._needs_newline = False
        self._lock = threading.Lock()  # the model name, the verdicts and the cache file
        self._client_lock = threading.Lock()
        self._http: httpx.Client | None = None
        if self.cache_path is not None:
            self._load_cache(self.cache_path)

    # -- the contract --------------------------------------------------------------------

    def score_group(self, group: Sequence[Trajectory]) -> list[RewardResult]:
        """One result per trajectory; the judge is asked once per new (question, prediction)."""
        if all(t.task.answer is None for t in group):
            return [_unscored() for _ in group]
        try:
            model = self._model()
        except JudgeError as exc:
            self._fall_back(exc)
            return [_unscored() if t.task.answer is None else _failed() for t in group]
        plans = [self._plan(t, model) for t in group]
        queries = [p for p in plans if isinstance(p, _Query)]
        with self._lock:
            known = {q.key: self._verdicts[q.key] for q in queries if q.key in self._verdicts}
        fresh = self._ask_all({q.key: q for q in queries if q.key not in known})
        return [_result(p, known, fresh) for p in plans]

    def _plan(self, trajectory: Trajectory, model: str) -> _Query | RewardResult:
        """The question for the judge, or the result when there is nothing to ask."""
        if trajectory.task.answer is None:
            return _unscored()
        prediction = extract_answer(trajectory.answer or "")
        if not prediction.strip():  # no answer at all is wrong; no need to ask
            return RewardResult(0.0, {"judged": 0.0, "cached": 0.0, "no_answer": 1.0})
        prompt = self.prompt_for(trajectory, prediction)
        key_text = json.dumps([model, self.prompt, prompt], ensure_ascii=False)
        return _Query(hashlib.sha256(key_text.encode()).hexdigest(), model, prompt)

    def prompt_for(self, trajectory: Trajectory, prediction: str) -> str:
        """The prompt about one trajectory: ``params.prompt`` with its placeholders filled.

        Subclasses that ask a benchmark's own grader prompt override this (and
        :meth:`verdict`); ``prediction`` is the answer extracted from the response.
        """
        values = {
            "question": trajectory.task.question,
            "answer": str(trajectory.task.answer),
            "prediction": prediction,
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.prompt)

    def verdict(self, reply: str) -> float | None:
        """The score a reply gives (default :func:`parse_verdict`)."""
        return parse_verdict(reply)

    def _fall_back(self, exc: JudgeError) -> None:
        """Raise ``exc``, or with ``fallback: zero`` log it and go on."""
        if self.params["fallback"] == "error":
            raise exc
        log.warning("%s", exc)

    # -- asking --------------------------------------------------------------------------

    def _ask_all(self, queries: dict[str, _Query]) -> dict[str, _Verdict]:
        """Verdicts for ``queries`` from at most ``concurrency`` requests at a time."""
        verdicts: dict[str, _Verdict] = {}
        if not queries:
            return verdicts
        pool = ThreadPoolExecutor(min(self.concurrency, len(queries)), "llm-judge")
        try:
            futures = {pool.submit(self._ask, query): key for key, query in queries.items()}
            for future in as_completed(futures):
                key, verdict = futures[future], future.result()
                verdicts[key] = verdict
                if verdict.score is not None:
                    self._remember(key, verdict)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return verdicts

    def _ask(self, query: _Query) -> _Verdict:
        """One verdict; a failed judge raises JudgeError or, with fallback zero, is noted."""
        body = {
            "model": query.model,
            "messages": [{"role": "user", "content": query.prompt}],
            "temperature": 0,
        }
        try:
            reply = _reply_text(self._request("POST", "/chat/completions", body), self.endpoint)
        except JudgeError as exc:
            self._fall_back(exc)
            return _Verdict(None, failed=True)
        score = self.verdict(reply)
        if score is None:
            log.warning("LLM judge %s gave no verdict in %r; scored 0", self.endpoint, reply[:200])
        return _Verdict(score, reply)

    def _model(self) -> str:
        """``params.model``, or when it is ``auto`` the first id the server lists (once)."""
        with self._lock:
            if self.model is None:
                listing = self._request("GET", "/models", None)
                try:
                    self.model = str(listing["data"][0]["id"])
                except (KeyError, IndexError, TypeError):
                    raise JudgeError(
                        f"LLM judge endpoint {self.endpoint}/models lists no model: "
                        f"{_snippet(str(listing))!r}. Fix: set rewards[...].params.model to "
                        f"the served model name."
                    ) from None
            return self.model

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """The decoded JSON of the first successful response, retrying transient failures."""
        attempts = int(self.params["max_retries"]) + 1
        for attempt in range(1, attempts + 1):
            data, failure, retryable = self._attempt(method, path, body)
            if failure is None:
                return data
            if not retryable or attempt == attempts:
                raise JudgeError(self._message(path, failure, attempt))
            delay = float(self.params["backoff_s"]) * 2.0 ** (attempt - 1)
            delay *= random.uniform(0.5, 1.0)
            log.info(
                "LLM judge %s: %s; retry in %.2fs", self.endpoint, self._redact(failure), delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[Any, str | None, bool]:
        """One request: (json, None, _) on success, else (None, what failed, retryable)."""
        import httpx

        try:
            response = self._client().request(method, self.endpoint + path, json=body)
        except httpx.TimeoutException as exc:
            return None, f"timed out after {self.params['timeout_s']}s ({type(exc).__name__})", True
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return None, f"{type(exc).__name__}: {exc}", True
        status = response.status_code
        if not response.is_success:
            detail = f"HTTP {status} {response.reason_phrase}: {_snippet(response.text)}"
            return None, detail, status in _RETRY_STATUSES or status >= 500
        try:
            return response.json(), None, False
        except ValueError:
            return None, f"a body that is not JSON: {_snippet(response.text)!r}", False

    def _client(self) -> httpx.Client:
        import httpx  # here, not at import: loading reward plugins stays cheap

        with self._client_lock:
            if self._http is None:
                headers = {"Content-Type": "application/json"}
                key = os.environ.get(str(self.params["api_key_env"]), "")
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                size = self.concurrency
                self._http = httpx.Client(
                    headers=headers,
                    timeout=httpx.Timeout(float(self.params["timeout_s"]), pool=None),
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                )
        return self._http

    def close(self) -> None:
        """Close the pooled connections; a later request opens a new pool."""
        client, self._http = self._http, None
        if client is not None:
            client.close()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for Ray workers): the client and the lock are rebuilt, not copied."""
        return {**self.__dict__, "_http": None, "_lock": None, "_client_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _client_lock=threading.Lock())

    # -- errors --------------------------------------------------------------------------

    def _message(self, path: str, failure: str, attempts: int) -> str:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        return self._redact(
            f"LLM judge endpoint {self.endpoint} ({path}) failed after {tries}: {failure}. "
            f"Fix: {self._fix(failure)}"
        )

    def _fix(self, failure: str) -> str:
        if failure.startswith("timed out"):
            return "raise rewards[...].params.timeout_s or lower params.concurrency."
        status = re.match(r"HTTP (\d+)", failure)
        if status is None and "not JSON" in failure:
            return (
                "params.endpoint must be the OpenAI-compatible API root, e.g. http://host:8000/v1."
            )
        if status is None:
            return (
                "is the judge running? start it with `vllm serve <judge model>` and set "
                "rewards[...].params.endpoint to its /v1 root; or set params.fallback: zero "
                "to score 0 while it is down."
            )
        code = int(status.group(1))
        if code in (401, 403):
            return f"set ${self.params['api_key_env']} to a key this server accepts."
        if code == 404:
            return "check params.model (a name the server serves) and the /v1 suffix of endpoint."
        if code >= 500 or code in _RETRY_STATUSES:
            return "read the judge server's log; raise params.max_retries or lower concurrency."
        return "the judge rejected the request; check params.model and params.prompt."

    def _redact(self, text: str) -> str:
        """``text`` with the api key masked: a server may echo the Authorization header."""
        key = os.environ.get(str(self.params["api_key_env"]), "")
        return text.replace(key, "***") if key else text

    # -- the cache -----------------------------------------------------------------------

    def _load_cache(self, path: Path) -> None:
        """Read earlier verdicts; a corrupt line is skipped with a warning."""
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8")
        self._needs_newline = bool(text) and not text.endswith("\n")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, score = str(entry["key"]), float(entry["score"])
                if not 0.0 <= score <= 1.0:
                    raise ValueError(f"score {score} is outside [0, 1]")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("LLM judge cache %s:%d is corrupt (%s); skipped", path, number, exc)
                continue
            self._verdicts[key] = score

    def _remember(self, key: str, verdict: _Verdict) -> None:
        """Keep a verdict in memory and append it, one flushed line, to the cache file."""
        assert verdict.score is not None
        with self._lock:
            self._verdicts[key] = verdict.score
            if self.cache_path is None:
                return
            entry = {"key": key, "score": verdict.score, "model": self.model}
            line = json.dumps({**entry, "reply": verdict.reply[:200]}, ensure_ascii=False)
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as file:
                # a line cut short by a crash must not swallow the next verdict
                file.write(("\n" if self._needs_newline else "") + line + "\n")
                file.flush()
            self._needs_newline = False


def _unscored() -> RewardResult:
    return RewardResult(0.0, {"unscored": 1.0})


def _failed() -> RewardResult:
    return RewardResult(0.0, {"judge_error": 1.0})


def _result(
    plan: _Query | RewardResult, known: dict[str, float], fresh: dict[str, _Verdict]
) -> RewardResult:
    """A trajectory's result from its plan, the cached verdicts and the new ones."""
    if isinstance(plan, RewardResult):
        return plan
    if plan.key in known:
        return RewardResult(known[plan.key], {"judged": 1.0, "cached": 1.0})
    verdict = fresh[plan.key]
    if verdict.failed:
        return _failed()
    if verdict.score is None:
        return RewardResult(0.0, {"judged": 1.0, "cached": 0.0, "unparsed": 1.0})
    return RewardResult(verdict.score, {"judged": 1.0, "cached": 0.0})


def _check_params(params: dict[str, Any]) -> tuple[str, str]:
    """The endpoint (no trailing slash) and the prompt, after checking every param."""
    endpoint = params["endpoint"]
    if not endpoint:
        raise ConfigError(
            "reward 'llm_judge' needs params.endpoint, the judge's OpenAI-compatible API root, "
            "e.g. http://127.0.0.1:8000/v1. Fix: rewards[...].params.endpoint."
        )
    if params["fallback"] not in _FALLBACKS:
        raise ConfigError(
            f"reward 'llm_judge' params.fallback is {params['fallback']!r}; "
            f"Fix: use one of {', '.join(_FALLBACKS)}."
        )
    prompt = str(params["prompt"])
    missing = [f"{{{name}}}" for name in ("answer", "prediction") if f"{{{name}}}" not in prompt]
    if missing:
        raise ConfigError(
            f"reward 'llm_judge' params.prompt lacks {' and '.join(missing)}; the judge "
            f"could not see what to compare. Fix: write {{question}}, {{answer}} and "
            f"{{prediction}} into the template."
        )
    for name in ("concurrency", "timeout_s"):
        if not float(params[name]) > 0:
            raise ConfigError(f"reward 'llm_judge' params.{name} must be > 0, not {params[name]}")
    if int(params["max_retries"]) < 0:
        raise ConfigError(
            f"reward 'llm_judge' params.max_retries must be >= 0, not {params['max_retries']}"
        )
    return str(endpoint).rstrip("/"), prompt


def _reply_text(data: Any, endpoint: str) -> str:
    """``choices[0].message.content`` of a completion, else JudgeError."""
    try:
        return str(data["choices"][0]["message"].get("content") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise JudgeError(
            f"LLM judge endpoint {endpoint} answered without choices[0].message: "
            f"{_snippet(str(data))!r}. Fix: point params.endpoint at a chat-completions API "
            f"(OpenAI-compatible), e.g. http://127.0.0.1:8000/v1."
        ) from None


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
