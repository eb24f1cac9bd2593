"""Write the small sample data sets in this folder (deterministic for a given seed).

Intent classification (customer service, 8 intents, ``text`` / ``label`` JSONL):
    intents_train.jsonl (40 per intent), intents_validation.jsonl (10 per intent),
    intents_test.jsonl (10 per intent), intents_oos.jsonl (40 out-of-scope, label ``oos``).
NER (2 columns ``token tag``, BIO2, PER / ORG / LOC):
    ner_train.conll (150 sentences), ner_validation.conll (40), ner_test.conll (40).

No text occurs twice, within or across files. Usage::

    python examples/data/make_sample.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PER_INTENT = {"train": 40, "validation": 10, "test": 10}
N_OOS = 40
NER_SIZES = {"train": 150, "validation": 40, "test": 40}

SLOTS = {
    "account": ["checking account", "savings account", "current account", "joint account", "account"],
    "amount": ["$50", "$200", "100 euros", "$1,500", "twenty dollars", "£75", "$3000"],
    "person": ["my mom", "John", "my landlord", "Sarah", "my brother", "a friend", "Mr. Lee"],
    "card": ["debit card", "credit card", "visa card", "bank card", "card"],
    "when": ["today", "yesterday", "this morning", "last night", "on the bus", "at the mall"],
    "site": ["the app", "online banking", "the website", "my account", "the portal"],
    "day": ["on sunday", "on saturday", "on public holidays", "tomorrow", "on christmas eve", "today"],
    "place": ["the branch", "your store", "the downtown office", "customer service", "the call center"],
    "order": ["my order", "order 4417", "the order i placed", "my last purchase", "order #A-2231"],
    "package": ["my package", "my parcel", "the delivery", "my shipment", "the box i ordered"],
    "item": ["headphones", "the blue jacket", "a phone case", "my shoes", "the coffee maker"],
}

INTENTS = {
    "check_balance": [
        "what is my {account} balance",
        "how much money is in my {account}",
        "show me the balance of my {account}",
        "can you tell me my {account} balance",
        "check the balance on my {account}",
        "how much do i have left in my {account}",
        "what's the current balance of my {account}",
        "i need to know how much is in my {account}",
        "balance of {account}",
        "do i have enough money in my {account} to pay {amount}",
    ],
    "transfer_money": [
        "send {amount} to {person}",
        "transfer {amount} from my {account} to {person}",
        "i want to wire {amount} to {person}",
        "move {amount} into my {account}",
        "can you pay {person} {amount}",
        "how do i send money to {person}",
        "make a transfer of {amount} to {person}",
        "i need to transfer {amount} today",
        "please send {person} {amount} from my {account}",
    ],
    "lost_card": [
        "i lost my {card}",
        "my {card} was stolen {when}",
        "i can't find my {card} anywhere",
        "someone took my {card} {when}",
        "block my {card} right away",
        "i think i dropped my {card} {when}",
        "please freeze my {card}, it's missing",
        "report a lost {card}",
        "my wallet with my {card} is gone",
    ],
    "reset_password": [
        "i forgot my password for {site}",
        "reset my password",
        "how do i change my password on {site}",
        "i can't log in to {site}",
        "i'm locked out of {site}",
        "my password for {site} doesn't work anymore",
        "help me recover my login for {site}",
        "send me a password reset link for {site}",
        "i need a new password for {site}",
    ],
    "opening_hours": [
        "what time does {place} open {day}",
        "when does {place} close {day}",
        "are you open {day}",
        "what are the opening hours of {place}",
        "is {place} open {day}",
        "until what time is {place} open",
        "when can i visit {place}",
        "what are your hours {day}",
        "how late is {place} open {day}",
    ],
    "cancel_order": [
        "cancel {order}",
        "i want to cancel {order}",
        "please stop {order} before it ships",
        "how do i cancel {order}",
        "i changed my mind about {item}, cancel it",
        "can i still cancel {order}",
        "i no longer want {item}, please cancel {order}",
        "undo {order}",
        "i ordered {item} by mistake, cancel please",
    ],
    "track_package": [
        "where is {package}",
        "track {package}",
        "when will {package} arrive",
        "has {package} shipped yet",
        "what's the status of {package}",
        "{package} still hasn't arrived",
        "give me the tracking number for {package}",
        "is {package} out for delivery",
        "i'm still waiting for {item}, where is it",
    ],
    "speak_to_human": [
        "i want to talk to a real person",
        "connect me to an agent",
        "can i speak to a human",
        "let me talk to someone at {place}",
        "transfer me to a representative",
        "i need a human, not a bot",
        "get me a customer service agent",
        "is there a person i can chat with",
        "put me through to {place}",
        "operator please",
        "i'd like to speak with a manager",
    ],
}

OOS = [
    "what's the weather like in {city} {day}",
    "how do i make {dish}",
    "tell me a joke about {topic}",
    "who wrote {book}",
    "what time is it in {city}",
    "how many calories are in {dish}",
    "translate {word} into {lang}",
    "what is the capital of {country}",
    "play some {genre} music",
    "how tall is the tallest building in {city}",
    "recommend a good book about {topic}",
    "how far is {city} from {country}",
]
OOS_SLOTS = {
    "city": ["paris", "tokyo", "lagos", "chicago", "lima", "oslo"],
    "day": ["today", "tomorrow", "this weekend", "next week"],
    "dish": ["pancakes", "lasagna", "a pizza", "pad thai", "banana bread"],
    "topic": ["cats", "physics", "the ocean", "history", "space"],
    "book": ["war and peace", "the hobbit", "hamlet", "don quixote"],
    "word": ["hello", "thank you", "good night", "friend"],
    "lang": ["french", "spanish", "japanese", "swahili"],
    "country": ["canada", "peru", "kenya", "norway", "vietnam"],
    "genre": ["jazz", "classical", "rock", "lo-fi"],
}
PREFIXES = ["", "", "", "hi, ", "hello, ", "hey ", "excuse me, ", "quick question: "]
SUFFIXES = ["", "", "", "?", " please", " thanks", " asap", "!"]

NER_TEMPLATES = [
    "{PER} flew to {LOC} on behalf of {ORG} .",
    "{ORG} opened a new office in {LOC} last {month} .",
    "{PER} joined {ORG} in {month} .",
    "According to {PER} , {ORG} will hire 200 people in {LOC} .",
    "{PER} met {PER} in {LOC} on {weekday} .",
    "The mayor of {LOC} , {PER} , criticised {ORG} .",
    "Shares of {ORG} fell after {PER} resigned .",
    "{PER} was born in {LOC} and now lives in {LOC} .",
    "{ORG} and {ORG} signed a deal in {LOC} on {weekday} .",
    "Fans in {LOC} cheered for {PER} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Heavy rain closed roads around {LOC} on {weekday} .",
    "{ORG} reported higher profits in {month} .",
    "The talks were postponed until {month} .",
]
NER_SLOTS = {
    "PER": ["Anna Schmidt", "John Smith", "Maria Garcia", "Wei Zhang", "Olu Adeyemi", "Priya Patel",
            "Lars", "Sofia Rossi", "Kenji Tanaka", "Fatima Al-Sayed", "Tom", "Elena Petrova"],
    "ORG": ["Acme Corp", "Deutsche Bank", "Reuters", "Siemens", "Red Cross", "Toyota Motor",
            "Greenpeace", "Northwind Traders", "Bank of Canada", "Oxfam"],
    "LOC": ["Paris", "New York", "Lagos", "Tokyo", "Rio de Janeiro", "Berlin", "Cape Town",
            "Mumbai", "Lake Geneva", "Buenos Aires", "Oslo", "Sydney"],
    "month": ["January", "March", "May", "July", "September", "November"],
    "weekday": ["Monday", "Tuesday", "Friday", "Sunday"],
}


def fill(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    """Replace each ``{slot}`` in ``template`` with a random filler (each slot drawn anew)."""
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        out = out[:start] + rng.choice(slots[out[start + 1 : end]]) + out[end + 1 :]
    return out


def utterances(
    templates: list[str], slots: dict[str, list[str]], n: int, seen: set[str], rng: random.Random
) -> list[str]:
    """``n`` new distinct utterances, cycling through the templates so that all are used.

    Raises
    ------
    RuntimeError
        The templates cannot give ``n`` utterances that are not in ``seen``.
    """
    out: list[str] = []
    order = list(templates)
    rng.shuffle(order)
    for attempt in range(200 * n):
        base = fill(order[attempt % len(order)], slots, rng)
        text = (rng.choice(PREFIXES) + base + rng.choice(SUFFIXES)).strip()
        if text not in seen:
            seen.add(text)
            out.append(text)
            if len(out) == n:
                return out
    raise RuntimeError(f"only {len(out)} of {n} distinct utterances from {templates[0]!r}...")


def ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """One sentence as (token, BIO2 tag) pairs from a random template."""
    pairs: list[tuple[str, str]] = []
    for word in rng.choice(NER_TEMPLATES).split():
        slot = word[1:-1] if word.startswith("{") else None
        if slot is None:
            pairs.append((word, "O"))
            continue
        tokens = rng.choice(NER_SLOTS[slot]).split()
        if slot.isupper():
            pairs += [(t, ("B-" if i == 0 else "I-") + slot) for i, t in enumerate(tokens)]
        else:
            pairs += [(t, "O") for t in tokens]
    return pairs


def write_jsonl(path: Path, records: list[dict[str, str]]) -> None:
    """One JSON object per line, UTF-8."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    """``token tag`` lines, a blank line after each sentence."""
    blocks = ["".join(f"{tok} {tag}\n" for tok, tag in s) for s in sentences]
    path.write_text("\n".join(blocks), encoding="utf-8")


def main(out: Path, seed: int) -> None:
    """Write every sample file into ``out``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    split_records: dict[str, list[dict[str, str]]] = {name: [] for name in PER_INTENT}
    for label, templates in INTENTS.items():
        texts = utterances(templates, SLOTS, sum(PER_INTENT.values()), seen, rng)
        start = 0
        for name, n in PER_INTENT.items():
            split_records[name] += [{"text": t, "label": label} for t in texts[start : start + n]]
            start += n
    out.mkdir(parents=True, exist_ok=True)
    for name, records in split_records.items():
        rng.shuffle(records)  # interleave intents, as in real files
        write_jsonl(out / f"intents_{name}.jsonl", records)
    oos = utterances(OOS, OOS_SLOTS, N_OOS, seen, rng)
    write_jsonl(out / "intents_oos.jsonl", [{"text": t, "label": "oos"} for t in oos])

    sentences: list[list[tuple[str, str]]] = []
    seen_sentences: set[tuple[tuple[str, str], ...]] = set()
    while len(sentences) < sum(NER_SIZES.values()):
        sentence = ner_sentence(rng)
        if tuple(sentence) not in seen_sentences:
            seen_sentences.add(tuple(sentence))
            sentences.append(sentence)
    start = 0
    for name, n in NER_SIZES.items():
        write_conll(out / f"ner_{name}.conll", sentences[start : start + n])
        start += n
    print(f"wrote {len(INTENTS)} intents x {sum(PER_INTENT.values())} + {N_OOS} oos and "
          f"{len(sentences)} NER sentences to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    main(args.out, args.seed)
