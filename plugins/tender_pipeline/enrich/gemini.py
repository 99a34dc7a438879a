"""Gemini enrichment: many tenders per structured-output request, validated, cached and costed.

Flow for ``enrich(records)``:
1. look every record up in the persistent cache (content hash + model + prompt version);
2. send the rest in batches of ``GEMINI_ENRICH_BATCH_SIZE`` over a bounded-concurrency
   async client, each request within the RPM/TPM budgets and retried on 408/429/5xx;
3. validate every answer item (known id, schema); ids missing or invalid in an answer
   are asked again alone. The sector is a division code from an enum: a code off the list
   takes the offline classifier's answer (or Unclassified) and is logged; a code below
   ``SECTOR_MIN_CONFIDENCE`` is Unclassified; a record's own CPV division always wins;
4. whatever is still missing is filled by the offline enricher and marked
   ``enrichment_source="fallback"``, never dropped and never passed off as Gemini's.
Only Gemini's own valid answers are cached, so a later run retries the fallbacks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from google import genai
from google.genai import errors, types

from tender_pipeline.gemini.cache import EnrichmentCache, cache_key, cache_path_for
from tender_pipeline.gemini.client import GeminiConfigError, make_client, redact, run_sync
from tender_pipeline.gemini.context_cache import InstructionCache
from tender_pipeline.gemini.prompt import (
    estimate_tokens,
    parse_batch,
    prompt_version,
    response_schema,
    system_instruction,
    user_prompt,
)
from tender_pipeline.gemini.ratelimit import RateLimiter
from tender_pipeline.gemini.retry import TRANSPORT_ERRORS, RetryPolicy, call_with_retries, describe_error
from tender_pipeline.gemini.usage import UsageMeter
from tender_pipeline.models import UNCLASSIFIED, Enrichment, TenderRecord
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

OUTPUT_TOKENS_PER_RECORD = 120  # budget estimate before the response tells us the truth
Item = tuple[str, TenderRecord]  # (cache key, record)


@dataclass
class _Run:
    """State of one ``enrich`` call's async work."""

    client: genai.Client
    instruction: InstructionCache
    semaphore: asyncio.Semaphore
    results: dict[str, Enrichment] = field(default_factory=dict)  # cache key → enrichment
    consecutive_failures: int = 0
    breaker_open: bool = False


class GeminiEnricher:
    """Batched structured enrichment on Gemini; see the module docstring for the flow."""

    name = "gemini"

    def __init__(self, settings: Settings, fallback: object | None = None, taxonomy: Taxonomy | None = None) -> None:
        if settings.gemini_api_key is None or not settings.gemini_api_key.get_secret_value():
            raise GeminiConfigError("ENRICH_BACKEND=gemini needs GEMINI_API_KEY; set it or use ENRICH_BACKEND=local")
        self.settings = settings
        self.model = settings.gemini_enrich_model
        self.taxonomy = taxonomy or load_taxonomy(settings.taxonomy_path)
        self.divisions = {code: d.label for code, d in self.taxonomy.divisions.items()}
        self.instruction = system_instruction(self.taxonomy)
        self.schema = response_schema(self.taxonomy)
        self.prompt_version = prompt_version(self.taxonomy)
        self.policy = RetryPolicy.from_settings(settings)
        self.limiter = RateLimiter(settings.gemini_rpm, settings.gemini_tpm)
        self.meter = UsageMeter(settings, kind="generate")
        self.cache = EnrichmentCache(cache_path_for(settings))
        self._fallback = fallback  # an Enricher; built lazily (it may load a local model)

    def __repr__(self) -> str:
        return f"GeminiEnricher(model={self.model!r}, batch_size={self.settings.gemini_enrich_batch_size})"

    def usage(self) -> dict[str, float]:
        return self.meter.snapshot()

    # --- sync entry point ------------------------------------------------
    def enrich(self, records: list[TenderRecord]) -> list[Enrichment]:
        """One Enrichment per record, in input order."""
        if not records:
            return []
        keys = [cache_key(r.content_hash(), self.model, self.prompt_version) for r in records]
        hits = self.cache.get_many(keys)
        pending: dict[str, TenderRecord] = {}
        for key, record in zip(keys, records, strict=True):
            if key not in hits:
                pending.setdefault(key, record)
        fresh = run_sync(lambda: self._enrich_async(list(pending.items()))) if pending else {}

        out: list[Enrichment | None] = []
        missing: list[int] = []
        for i, (key, record) in enumerate(zip(keys, records, strict=True)):
            if key in hits:
                out.append(Enrichment.model_validate_json(hits[key]).model_copy(
                    update={"tender_id": record.tender_id, "enrichment_source": "gemini"}))
            elif key in fresh:
                out.append(fresh[key].model_copy(update={"tender_id": record.tender_id}))
            else:
                out.append(None)
                missing.append(i)
        for i, record in enumerate(records):
            division = self.taxonomy.division_of_record(record.cpv_codes)
            answer = out[i]
            if division is not None and answer is not None:  # the notice's own CPV code is certain
                out[i] = answer.model_copy(update={"sector": division.label, "sector_code": division.code,
                                                   "sector_confidence": 1.0})
        if missing:
            filled = self._fallback_enricher().enrich([records[i] for i in missing])
            for i, enrichment in zip(missing, filled, strict=True):
                out[i] = enrichment.model_copy(update={"enrichment_source": "fallback"})
        cached = sum(k in hits for k in keys)
        # misses are what a per-worker cache costs: counted so the run summary shows them
        self.meter.add(records=len(records), cache_hits=cached, cache_misses=len(records) - cached,
                       fallbacks=len(missing))
        log.info("gemini enrich: %d records, %d from cache, %d fresh, %d fallback",
                 len(records), sum(k in hits for k in keys), len(records) - len(missing)
                 - sum(k in hits for k in keys), len(missing))
        return [e for e in out if e is not None]

    def _offline_sectors(self, found: dict[str, Enrichment], records: list[TenderRecord]) -> None:
        """Answers whose sector code was off the list take the offline classifier's sector (or Unclassified)."""
        calls = self._fallback_enricher().sectors(records)
        for record, call in zip(records, calls, strict=True):
            division = call.division
            found[record.tender_id] = found[record.tender_id].model_copy(update={
                "sector": division.label if division else UNCLASSIFIED,
                "sector_code": division.code if division else "", "sector_confidence": round(call.confidence, 4)})
        self.meter.add(off_list_sectors=len(records))
        log.warning("gemini answered %d sector code(s) outside the taxonomy; used the offline classifier: %s",
                    len(records), ", ".join(r.tender_id for r in records[:10]))

    def _fallback_enricher(self):
        if self._fallback is None:
            from tender_pipeline.enrich.offline import OfflineEnricher

            self._fallback = OfflineEnricher.from_settings(self.settings)
        return self._fallback

    # --- async work ------------------------------------------------------
    async def _enrich_async(self, pending: list[Item]) -> dict[str, Enrichment]:
        client = make_client(self.settings)
        run = _Run(client, InstructionCache(client, self.settings, self.model, self.instruction, self.meter),
                   asyncio.Semaphore(self.settings.gemini_max_concurrency))
        batches, alone = _batches(pending, self.settings.gemini_enrich_batch_size)
        try:
            await run.instruction.open(len(batches) + len(alone))
            leftovers = await asyncio.gather(*(self._ask(run, b) for b in batches))
            retry = [item for group in leftovers for item in group] + alone
            if retry:
                self.meter.add(record_retries=len(retry))
                await asyncio.gather(*(self._ask(run, [item], last_try=True) for item in retry))
        finally:
            await run.instruction.close()
            await client.aio.aclose()
        return run.results

    async def _ask(self, run: _Run, batch: list[Item], last_try: bool = False) -> list[Item]:
        """Send one batch; store valid answers; return the items to ask again alone."""
        if run.breaker_open:
            return []
        prompt = user_prompt([r for _, r in batch], self.settings.gemini_max_text_chars)
        estimate = estimate_tokens(self.instruction) + estimate_tokens(prompt)
        failure: errors.APIError | None = None
        async with run.semaphore:
            if run.breaker_open:  # it may have opened while we queued
                return []
            try:
                response = await call_with_retries(
                    lambda: self._generate(run, prompt, estimate + OUTPUT_TOKENS_PER_RECORD * len(batch)),
                    self.policy, on_retry=lambda exc, wait: self.meter.add(retries=1),
                )
            except errors.APIError as exc:
                failure = exc
            except TRANSPORT_ERRORS as exc:
                self._exhausted(run, exc)
                return []
        if failure is not None:  # outside the semaphore: handling may ask again
            return await self._on_api_error(run, batch, failure, last_try)
        run.consecutive_failures = 0
        found, off_list = parse_batch(response.text, [r.tender_id for _, r in batch], self.divisions,
                                      self.settings.sector_min_confidence)
        if off_list:
            self._offline_sectors(found, [r for _, r in batch if r.tender_id in off_list])
        got = {key: found[r.tender_id] for key, r in batch if r.tender_id in found}
        run.results.update(got)
        self.cache.put_many({k: e.model_dump_json() for k, e in got.items()}, self.model, self.prompt_version)
        rejected = [item for item in batch if item[0] not in got]
        self.meter.add(invalid_answers=len(rejected))
        if rejected:
            log.info("gemini answer lacked %d of %d records (missing or invalid)%s",
                     len(rejected), len(batch), "" if not last_try else "; using the offline fallback")
        return [] if last_try else rejected

    async def _generate(self, run: _Run, prompt: str, budget_tokens: int) -> types.GenerateContentResponse:
        """One HTTP attempt: wait for the budgets, call, count."""
        self.meter.add(rate_limit_wait_s=await self.limiter.acquire(budget_tokens))
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=self.schema,
            temperature=0.0,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),  # no tools here
            **run.instruction.config(),
        )
        try:
            response = await run.client.aio.models.generate_content(model=self.model, contents=prompt, config=config)
        except Exception:
            self.meter.add(requests=1, failed_requests=1)
            raise
        self.meter.add_response(response.usage_metadata, estimate_tokens(prompt))
        return response

    async def _on_api_error(self, run: _Run, batch: list[Item], exc: errors.APIError, last_try: bool) -> list[Item]:
        """Decide what a final API error means: config problem (raise), bad request (retry alone), outage."""
        if exc.code in (401, 403):
            raise GeminiConfigError(redact(f"Gemini rejected the request (HTTP {exc.code} {exc.status}): "
                                           f"{exc.message}; check GEMINI_API_KEY", self.settings)) from None
        if exc.code == 404 and run.instruction.name:
            run.instruction.drop()  # cache expired or unsupported: go inline and try again
            return await self._ask(run, batch, last_try)
        if exc.code == 404:
            raise GeminiConfigError(redact(f"Gemini model {self.model!r} not found (HTTP 404): {exc.message}; "
                                           "check GEMINI_ENRICH_MODEL and GEMINI_BASE_URL", self.settings)) from None
        if exc.code in (400, 413) and not last_try:
            log.info("gemini refused a batch of %d (HTTP %d); asking for each record alone", len(batch), exc.code)
            return batch
        self._exhausted(run, exc)
        return []

    def _exhausted(self, run: _Run, exc: BaseException) -> None:
        """A request failed for good: count it and open the breaker after too many in a row."""
        run.consecutive_failures += 1
        self.meter.add(exhausted_requests=1)
        log.warning("gemini request failed after %d retries (%s)", self.policy.max_retries, describe_error(exc))
        if run.consecutive_failures >= self.settings.gemini_breaker_failures and not run.breaker_open:
            run.breaker_open = True
            self.meter.add(breaker_open=1)
            log.error("gemini failed %d requests in a row; the rest of this run uses the offline fallback",
                      run.consecutive_failures)


def _batches(items: list[Item], size: int) -> tuple[list[list[Item]], list[Item]]:
    """Batches of ``size`` with unique tender ids each; repeated ids go to the ask-alone list."""
    batches: list[list[Item]] = []
    alone: list[Item] = []
    seen: set[str] = set()
    current: list[Item] = []
    for key, record in items:
        if record.tender_id in seen:
            alone.append((key, record))
            continue
        seen.add(record.tender_id)
        current.append((key, record))
        if len(current) == size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches, alone
