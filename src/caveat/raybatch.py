"""Score a file on a Ray cluster through Ray Data: ``caveat predict RUN --file big.jsonl --out preds.parquet --ray``.

A nightly job over millions of inputs wants many model copies at once without a hand-made pool: Ray Data's
``map_batches`` with a callable class gives one model per actor (``RowScorer``, loaded once), ``actors`` of
them, fed ``chunk_size`` inputs at a time. Each row is ``score_chunk``'s, the function the single-process
stream (caveat.batchscore) builds its rows with, so both paths write the same rows.

Why not ``ray.data.read_json`` / ``read_csv`` / ``read_text``: output row ``i`` must be input ``i`` and MC dropout
seeds input ``i`` from ``(seed, i)``, so every input needs its position, which Ray's readers do not give
(``monotonically_increasing_id`` is unique, not positional; ``read_text`` also splits lines on U+2028, which
real texts contain). So ``iter_inputs`` reads and numbers the inputs (same formats, same errors) in one Ray
read task (Ray's readers, too, read a single file in one task), run on the driver's node, which sees the file.
The rows come back in input order (``preserve_order``) to the driver, which writes them with the
sinks of the stream: a ``.jsonl`` file or a ``.parquet`` directory of parts on the machine that ran the command
(Ray's writers would scatter parts over the workers' disks). Not resumable: an existing output is refused.

Ray is an optional extra (``pip install 'caveat[ray]'``), imported only when a function here runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from pathlib import Path

from caveat.batchscore import Enrich, check_method, chunked, count_inputs, iter_inputs, open_sink, score_chunk
from caveat.errors import CaveatError, ConfigError, DataError
from caveat.inference import Predictor
from caveat.models.rundir import open_run
from caveat.progress import phase
from caveat.rows import check_request


def score_on_ray(
    run: str | Path,
    file: str | Path,
    out: str | Path,
    *,
    actors: int = 2,
    address: str | None = None,
    chunk_size: int = 1000,
    batch_size: int | None = None,
    top_k: int = 0,
    method: str = "deterministic",
    samples: int = 10,
    seed: int = 0,
    enrich: Enrich | None = None,
) -> int:
    """Score ``file`` into ``out`` (a new ``.jsonl`` file or ``.parquet`` directory) with ``actors`` Ray actors,
    each holding the model of ``run``; the rows equal ``score_stream``'s (``enrich`` too: it travels to the actors,
    so it must pickle, as a module-level function or a ``functools.partial`` of one does). Connects to the Ray
    cluster at ``address`` (None: ``RAY_ADDRESS``, else a local Ray), unless Ray is initialised already; a Ray
    started here is shut down at the end. Returns the number of rows written."""
    file, out = Path(file).resolve(), Path(out)
    _check_options(out, actors, chunk_size, method, samples, top_k)
    ray = import_ray()
    check_method(open_run(run).task, method)  # a bad run fails here, not in every actor
    if next(iter_inputs(file), None) is None:  # before Ray and the model start (seconds)
        raise DataError(f"{file}: no texts. Fix: write one text per line (or one JSON object with 'text')")
    options = {"top_k": top_k, "method": method, "samples": samples, "seed": seed, "enrich": enrich}
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    try:
        rows = scored_dataset(ray, run, file, actors=actors, chunk_size=chunk_size, batch_size=batch_size, **options)
        return _write(rows, open_sink(out), chunk_size, total=count_inputs(file))
    finally:
        if started:
            ray.shutdown()


def import_ray():
    """The ``ray`` module, or a ``ConfigError`` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the [data] extra lacks pyarrow and pandas)
    except ImportError as e:
        raise ConfigError(
            f"scoring on Ray needs Ray Data ({e}): pip install 'caveat[ray]', or score without Ray"
        ) from None
    return ray


def _check_options(out: Path, actors: int, chunk_size: int, method: str, samples: int, top_k: int) -> None:
    """The checks that need neither Ray nor the model, so a typo fails in milliseconds."""
    check_request(method, samples, top_k)
    chunked((), chunk_size)
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigError(f"{{actors}} must be an integer >= 1 (model copies). Got {actors!r}.", fields=("actors",))
    if out.exists():
        raise ConfigError(
            f"{{out}}={out} exists and scoring on Ray does not resume: delete it, choose another {{out}}, "
            "or score without Ray (that resumes)",
            fields=("out",),
        )
    open_sink(out)  # a bad suffix fails now; the sink creates nothing until its first write


def scored_dataset(
    ray, run: str | Path, file: Path, *, actors: int, chunk_size: int, batch_size: int | None, **options
):
    """The Ray ``Dataset`` of ``file``'s rows, in input order: columns ``index`` (the input's position) and
    ``row`` (the row as JSON). Lazy: nothing runs until it is iterated."""
    inputs = ray.data.read_datasource(_numbered_source(file, chunk_size), num_cpus=0)
    # one read task that holds no CPU slot: N actors on N CPUs cannot starve it
    inputs.context.execution_options.preserve_order = True
    inputs.context.enable_progress_bars = False  # the driver shows caveat's own bar
    inputs.context.raise_original_map_exception = True  # a worker's DataError reaches the driver as one
    return inputs.map_batches(
        RowScorer,
        fn_constructor_kwargs={"run": str(Path(run).resolve()), "batch_size": batch_size, **options},
        batch_size=chunk_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
    )


class RowScorer:
    """One per Ray actor: loads the run's model once, then turns a batch of numbered inputs into their rows.
    A row travels as JSON: its nested values (probabilities keyed by label, spans) fit no single Arrow schema."""

    def __init__(self, run: str, *, batch_size: int | None = None, **options):
        self.predictor = Predictor.from_run(run, batch_size=batch_size)
        self.options = options

    def __call__(self, batch):
        import pyarrow as pa

        positions = batch["index"].to_pylist()
        inputs = [json.loads(x) for x in batch["input"].to_pylist()]
        rows = score_chunk(self.predictor, inputs, positions, **self.options)
        return pa.table({"index": positions, "row": [json.dumps(r, ensure_ascii=False) for r in rows]})


def numbered_blocks(path: Path, size: int) -> Iterator:
    """``iter_inputs(path)`` as Arrow tables of ``size`` inputs: ``index`` (the position) and ``input`` (the text,
    or the word list of a NER input, as JSON: one column type for both)."""
    import pyarrow as pa

    start = 0
    for chunk in chunked(iter_inputs(path), size):
        index = pa.array(range(start, start + len(chunk)), pa.int64())
        yield pa.table({"index": index, "input": [json.dumps(x, ensure_ascii=False) for x in chunk]})
        start += len(chunk)


def _numbered_source(path: Path, size: int):
    """A Ray Data source of ``numbered_blocks(path, size)``: one read task, on the driver's node (a class made
    here because its base class comes with ray, imported lazily)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class NumberedInputs(Datasource):
        @property
        def supports_distributed_reads(self) -> bool:
            return False  # Ray then runs the read where the driver is, which sees the file

        def estimate_inmemory_data_size(self) -> int:
            return path.stat().st_size

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None) -> list:
            meta = BlockMetadata(
                num_rows=None, size_bytes=path.stat().st_size, input_files=[str(path)], exec_stats=None
            )
            read = functools.partial(numbered_blocks, path, size)
            return [ReadTask(read, meta, per_task_row_limit=per_task_row_limit)]

    return NumberedInputs()


def _write(rows, sink, chunk_size: int, *, total: int | None) -> int:
    """Write the rows a chunk at a time, checking that row ``i`` is input ``i``; a caveat error raised on a
    worker (a malformed line, an empty input) is raised here as itself, not wrapped in Ray's."""
    written = sink.done()  # 0: the output is new; a Parquet one's directory is made here
    with phase("predict", total=total) as bar, _unwrapped():
        for batch in rows.iter_batches(batch_size=chunk_size, batch_format="pyarrow"):
            index = batch["index"].to_pylist()
            if index != list(range(written, written + len(index))):
                raise RuntimeError(f"Ray returned rows out of order (inputs {index[:3]}... after {written})")
            sink.write([json.loads(r) for r in batch["row"].to_pylist()])
            written += len(index)
            bar.advance(len(index))
    sink.close()
    return written


@contextlib.contextmanager
def _unwrapped() -> Iterator[None]:
    """Re-raise the ``CaveatError`` a Ray worker raised as itself: Ray hands it over as ``RayTaskError(DataError)``,
    whose message is the worker's traceback rather than the error's one line."""
    try:
        yield
    except Exception as error:
        cause = error
        while cause is not None and not (isinstance(cause, CaveatError) and getattr(cause, "cause", None) is None):
            cause = getattr(cause, "cause", None) or cause.__cause__  # RayTaskError.cause: what the worker raised
        if cause is None or cause is error:
            raise
        raise cause from None
