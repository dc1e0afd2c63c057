"""An OpenAI-compatible client, as ML teams run it, against blueshift: for each model name, a
streamed and a whole chat completion. Prints one line per call:
`MODEL stream|whole FINGERPRINT COLOR TOKENS... FINISH_REASON`.

    python3 openai_chat.py BASE_URL MODEL [MODEL ...]
"""
import sys

from openai import OpenAI


def main():
    base, models = sys.argv[1], sys.argv[2:]
    client = OpenAI(base_url=base, api_key="not-checked", max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "hello"}]
    for model in models:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True
        ) as resp:
            color = resp.headers.get("x-blueshift-color")
            tokens, finish, fingerprint = [], None, None
            for chunk in resp.parse():
                fingerprint = chunk.system_fingerprint
                choice = chunk.choices[0]
                if choice.delta.content:
                    tokens.append(choice.delta.content.strip())
                finish = choice.finish_reason or finish
            print(model, "stream", fingerprint, color, " ".join(tokens), finish)
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
        done = raw.parse()
        words = done.choices[0].message.content.split()
        print(
            model,
            "whole",
            done.system_fingerprint,
            raw.headers.get("x-blueshift-color"),
            " ".join(words),
            done.choices[0].finish_reason,
        )


if __name__ == "__main__":
    main()
