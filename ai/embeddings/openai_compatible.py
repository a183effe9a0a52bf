"""Embeddings from any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, LiteLLM)."""

import openai

from ai.embeddings.base import Embeddings, l2_normalise

# OpenAI's embedding models read 8,191 tokens; a token is at least one character of text.
WINDOW_TOKENS = 8191


class OpenAIEmbedder:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )
        self.id = f"openai:{model}" + (f":{dimensions}" if dimensions else "")
        self.dim = dimensions or 0  # known after the first call when not configured

    def sees_whole(self, text: str) -> bool:
        # No tokenizer here: a text of fewer characters than the window has fewer tokens.
        return len(text) < WINDOW_TOKENS

    def embed(self, texts: list[str]) -> Embeddings:
        extra = {"dimensions": self.dimensions} if self.dimensions else {}
        response = self.client.embeddings.create(model=self.model, input=texts, **extra)
        ordered = sorted(response.data, key=lambda item: item.index)
        vectors = l2_normalise([item.embedding for item in ordered])
        self.dim = vectors.shape[1]
        tokens = response.usage.prompt_tokens if response.usage else 0
        return Embeddings(vectors, tokens)
