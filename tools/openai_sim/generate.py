"""Deterministic model output: text replies, JSON mode, and JSON that satisfies a requested JSON Schema.

Structured Outputs guarantee that ``message.content`` parses and validates against the schema the caller
sent, so the generator walks the schema itself (objects, arrays, enums, ``const``, ``anyOf``/``oneOf``,
local ``$ref`` into ``$defs``/``definitions``, length and range bounds, common ``format`` s) and fills leaves
from a vocabulary chosen by the *property name*.  Two vocabularies make the output plausible for HireMeter:

* a **resume** schema (at least two of name/email/skills/experience/education/... among its property
  names) gets a parsed resume: a person, skills, jobs, degrees; the name, email and phone come from the
  CV text when it shows them (first line that reads as a name, first email, first phone number);
* a **questions** schema (a property named ``questions`` or ``stages``) gets staged interview questions.

Array sizes: ``minItems`` when given, otherwise a default (3 stages, 3 questions, 2 of anything else), always
clamped to ``[minItems, maxItems]``.  If the last user message asks for ``N questions per stage`` (digits,
also "per each stage" / "for each stage"), every ``questions`` array gets N items, still within its bounds.

Everything is a pure function of the request, so the same request always yields the same content.
"""

from __future__ import annotations

import json
import re
from typing import Any

REFUSAL_TRIGGER = "[[refuse]]"
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."

QUESTIONS_PER_STAGE = re.compile(
    r"(\d+)\s+(?:interview\s+)?questions?\s+(?:per|for each|for every|in each)\s+stage", re.I
)

RESUME_KEYS = {
    "name",
    "full_name",
    "email",
    "phone",
    "skills",
    "experience",
    "work_experience",
    "education",
    "summary",
    "certifications",
    "languages",
}

VOCABULARY: dict[str, list[str]] = {
    "name": ["Alex Morgan", "Priya Raman", "Jonas Becker", "Mei Chen"],
    "full_name": ["Alex Morgan", "Priya Raman", "Jonas Becker", "Mei Chen"],
    "first_name": ["Alex", "Priya", "Jonas", "Mei"],
    "last_name": ["Morgan", "Raman", "Becker", "Chen"],
    "email": ["alex.morgan@example.com", "priya.raman@example.com"],
    "phone": ["+1 555 0100", "+44 20 7946 0958"],
    "location": ["Berlin, Germany", "Austin, TX", "Toronto, Canada"],
    "city": ["Berlin", "Austin", "Toronto"],
    "country": ["Germany", "United States", "Canada"],
    "summary": ["Backend engineer with eight years of experience building reliable distributed systems."],
    "headline": ["Senior Backend Engineer"],
    "skills": ["Python", "PostgreSQL", "gRPC", "Kubernetes", "Distributed systems", "TypeScript"],
    "skill": ["Python", "PostgreSQL", "gRPC", "Kubernetes"],
    "languages": ["English", "German", "Spanish"],
    "certifications": ["AWS Certified Solutions Architect", "CKA"],
    "title": ["Senior Software Engineer", "Software Engineer", "Engineering Intern"],
    "job_title": ["Senior Software Engineer", "Software Engineer"],
    "role": ["Senior Software Engineer", "Software Engineer"],
    "position": ["Senior Software Engineer", "Software Engineer"],
    "company": ["Acme Analytics", "Globex Cloud", "Initech"],
    "employer": ["Acme Analytics", "Globex Cloud", "Initech"],
    "organization": ["Acme Analytics", "Globex Cloud"],
    "degree": ["M.Sc. Computer Science", "B.Sc. Computer Science"],
    "field_of_study": ["Computer Science", "Mathematics"],
    "institution": ["Technical University of Munich", "University of Toronto"],
    "school": ["Technical University of Munich", "University of Toronto"],
    "university": ["Technical University of Munich", "University of Toronto"],
    "description": ["Led the migration of the billing pipeline to an event-driven architecture."],
    "responsibilities": ["Designed the ingestion service", "Mentored three engineers"],
    "achievements": ["Cut p99 latency by 40%", "Shipped the usage metering service"],
    "highlights": ["Cut p99 latency by 40%", "Shipped the usage metering service"],
    "stage": ["screening", "technical", "behavioral", "culture fit", "final"],
    "stage_name": ["screening", "technical", "behavioral", "culture fit", "final"],
    "question": [
        "Walk me through a system you designed end to end. What trade-offs did you make?",
        "Tell me about a production incident you handled. What did you change afterwards?",
        "How do you decide between consistency and availability for a new service?",
        "Describe a time you disagreed with a teammate on a technical decision.",
        "What motivates you about this role and our product?",
        "How would you test a service that bills customers per API call?",
    ],
    "rationale": ["Probes ownership and depth of design experience."],
    "purpose": ["Probes ownership and depth of design experience."],
    "difficulty": ["medium", "hard", "easy"],
    "category": ["technical", "behavioral"],
    "competency": ["system design", "communication", "ownership"],
}
QUESTION_TEXT_KEYS = {"text", "question", "prompt", "content"}
STAGE_NAME_KEYS = {"name", "stage", "stage_name"}
_FACT_OF_KEY = {
    "name": "name",
    "full_name": "name",
    "email": "email",
    "emails": "email",
    "phone": "phone",
    "phones": "phone",
    "phone_number": "phone",
}
DATE_KEYS = ("date", "start", "end", "from", "to", "since", "until")


def wants_refusal(messages: list[dict[str, Any]]) -> bool:
    return any(REFUSAL_TRIGGER in json.dumps(m.get("content"), ensure_ascii=False) for m in messages)


def requested_questions_per_stage(messages: list[dict[str, Any]]) -> int | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            match = QUESTIONS_PER_STAGE.search(json.dumps(message.get("content"), ensure_ascii=False))
            return int(match.group(1)) if match else None
    return None


_NAME_LINE = re.compile(r"^[A-Z][A-Za-z'\-]+(?: [A-Z][A-Za-z'\-]+){1,3}$")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")


def resume_facts(messages: list[dict[str, Any]]) -> dict[str, str]:
    """What a reader sees at once in the CV the user sent: the name on its first line that looks like one,
    an email and a phone number. The parsed resume carries them, so different CVs parse differently."""
    user = [m for m in messages if m.get("role") == "user"]
    content = user[-1].get("content") if user else ""
    if isinstance(content, list):
        content = "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    text = content if isinstance(content, str) else ""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        if _NAME_LINE.match(line.strip()):
            facts["name"] = line.strip()
            break
    if email := _EMAIL.search(text):
        facts["email"] = email.group(0)
    if phone := _PHONE.search(text):
        facts["phone"] = phone.group(0).strip()
    return facts


def text_reply(model: str, messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1] if messages else {})
    gist = " ".join(json.dumps(last.get("content"), ensure_ascii=False).strip('"').split())[:80]
    return f"Simulated reply from {model}. You said: {gist}"


def json_object_reply(model: str, messages: list[dict[str, Any]]) -> str:
    return json.dumps({"model": model, "reply": text_reply(model, messages), "simulated": True})


def schema_reply(schema: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    names = _property_names(schema, schema, set())
    if names & {"questions", "stages"}:
        kind = "questions"
    elif len(names & RESUME_KEYS) >= 2:
        kind = "resume"
    else:
        kind = "generic"
    facts = resume_facts(messages) if kind == "resume" else {}
    generator = _Generator(schema, kind, requested_questions_per_stage(messages), facts)
    return json.dumps(generator.value(schema, key="", index=0), ensure_ascii=False)


def _property_names(node: Any, root: dict[str, Any], seen: set[str], depth: int = 0) -> set[str]:
    names: set[str] = set()
    if depth > 32 or not isinstance(node, dict):
        return names
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        names |= _property_names(_resolve(root, ref), root, seen, depth + 1)
    for key, sub in (node.get("properties") or {}).items():
        names.add(key)
        names |= _property_names(sub, root, seen, depth + 1)
    for keyword in ("items", "additionalProperties"):
        names |= _property_names(node.get(keyword), root, seen, depth + 1)
    for keyword in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(keyword) or []:
            names |= _property_names(sub, root, seen, depth + 1)
    return names


def _resolve(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref.lstrip("#/").split("/") if ref != "#" else []:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class _Generator:
    MAX_DEPTH = 24  # recursive schemas ($ref cycles) stop here with the smallest valid value

    def __init__(
        self,
        root: dict[str, Any],
        kind: str,
        questions_per_stage: int | None,
        facts: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.facts = facts or {}
        self.kind = kind
        self.questions_per_stage = questions_per_stage
        self._picks: dict[str, int] = {}

    def _pick(self, vocabulary: str) -> str:
        """The next word of a vocabulary: a running count, so six questions are six different questions."""
        options = VOCABULARY[vocabulary]
        count = self._picks.get(vocabulary, 0)
        self._picks[vocabulary] = count + 1
        return options[count % len(options)]

    def value(self, schema: Any, key: str, index: int, depth: int = 0) -> Any:
        if not isinstance(schema, dict):
            return self._string({}, key, index)
        if "$ref" in schema:
            merged = {
                **_resolve(self.root, schema["$ref"]),
                **{k: v for k, v in schema.items() if k != "$ref"},
            }
            return self.value(merged, key, index, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][index % len(schema["enum"])]
        for keyword in ("anyOf", "oneOf"):
            if schema.get(keyword):
                options = schema[keyword]
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.value((non_null or options)[0], key, index, depth + 1)
        if schema.get("allOf"):
            merged = {}
            for part in schema["allOf"]:
                merged.update(part)
            return self.value(merged, key, index, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((t for t in kind if t != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, index, depth)
        if kind == "array":
            return self._array(schema, key, depth)
        if kind == "integer":
            return int(self._number(schema, key, index, integer=True))
        if kind == "number":
            return self._number(schema, key, index, integer=False)
        if kind == "boolean":
            return index % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, key, index)

    def _object(self, schema: dict[str, Any], index: int, depth: int) -> dict[str, Any]:
        # Properties inherit the object's position in its array, so the i-th stage takes the i-th enum value.
        properties = schema.get("properties") or {}
        if depth >= self.MAX_DEPTH:
            properties = {k: v for k, v in properties.items() if k in (schema.get("required") or [])}
        return {name: self.value(sub, name, index, depth + 1) for name, sub in properties.items()}

    def _array(self, schema: dict[str, Any], key: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if depth >= self.MAX_DEPTH:
            count = low
        elif key == "questions" and self.questions_per_stage is not None:
            count = self.questions_per_stage
        elif "minItems" in schema:
            count = low
        else:
            count = 3 if key in ("questions", "stages", "skills") else 2
        count = max(count, low)
        if high is not None:
            count = min(count, int(high))
        item_schema = schema.get("items", {})
        singular = {"skills": "skill", "stages": "stage", "questions": "question"}.get(key, key)
        return [self.value(item_schema, singular, i, depth + 1) for i in range(count)]

    def _number(self, schema: dict[str, Any], key: str, index: int, integer: bool) -> float:
        lowered = key.lower()
        if "year" in lowered:
            guess = 6 + index
        elif "score" in lowered or "rating" in lowered:
            guess = 4
        elif "order" in lowered or "number" in lowered or lowered in ("index", "position"):
            guess = index + 1
        else:
            guess = 1 + index
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        step = 1 if integer else 0.5
        if low is not None and (guess < low or (guess == low and "exclusiveMinimum" in schema)):
            guess = low + (step if "exclusiveMinimum" in schema else 0)
        if high is not None and (guess > high or (guess == high and "exclusiveMaximum" in schema)):
            guess = high - (step if "exclusiveMaximum" in schema else 0)
        return guess if not integer else int(guess)

    def _string(self, schema: dict[str, Any], key: str, index: int) -> str:
        lowered = key.lower()
        fmt = schema.get("format")
        fact = _FACT_OF_KEY.get("email" if fmt == "email" else lowered)
        if self.kind == "resume" and fact in self.facts:
            text = self.facts[fact]
        elif fmt == "date-time":
            text = f"20{18 + index % 7}-0{1 + index % 9}-01T09:00:00Z"
        elif fmt == "date" or (fmt is None and self.kind == "resume" and lowered.endswith(DATE_KEYS)):
            text = f"20{18 + index % 7}-0{1 + index % 9}-01"
        elif fmt == "email":
            text = VOCABULARY["email"][index % 2]
        elif fmt in ("uri", "url"):
            text = f"https://example.com/profile/{index}"
        elif fmt == "uuid":
            text = f"00000000-0000-4000-8000-{index:012d}"
        elif self.kind == "questions" and lowered in STAGE_NAME_KEYS:
            text = self._pick("stage")
        elif self.kind == "questions" and lowered in QUESTION_TEXT_KEYS:
            text = self._pick("question")
        elif lowered in VOCABULARY:
            text = self._pick(lowered)
        else:
            text = f"{key or 'value'} {index + 1}"
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and len(text) < low:
            text = text + "x" * (low - len(text))
        if high is not None and len(text) > high:
            text = text[:high]
        return text
