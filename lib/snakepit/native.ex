defmodule Snakepit.Native do
  @moduledoc false
  # Stubs for the NIFs of native/snakepit_rs, grouped by the Rust file that holds them and named
  # after it. Errors come back as `{reason, message, details}`; `Snakepit.Native.Gate` is the one
  # place that turns them into `Snakepit.Error`.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:snakepit_rs), ~c"native/libsnakepit_rs")
    :erlang.load_nif(path, 0)
  end

  # src/nif/pool.rs — pool_*: life cycle
  def pool_start(_config, _owner), do: :erlang.nif_error(:nif_not_loaded)
  def pool_stop(_pool), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/request.rs — pool_*: requests
  # session: nil | {session_id, affinity | nil}; timed: the reply carries worker and timings
  def pool_submit(_pool, _tag, _command, _args, _session, _timeout_ms, _timed),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_submit_dirty(_pool, _tag, _command, _args, _session, _timeout_ms, _timed),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_check_deadline(_pool, _request_id), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/stream.rs — pool_stream*: streams; timeouts nil for the pool's
  def pool_stream(_pool, _tag, _command, _args, _session, _timeout_ms, _chunk_timeout_ms),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_stream_dirty(_pool, _tag, _command, _args, _session, _timeout_ms, _chunk_timeout_ms),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_stream_ack(_pool, _request_id, _taken), do: :erlang.nif_error(:nif_not_loaded)
  def pool_stream_halt(_pool, _request_id), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/session.rs — pool_*: sessions
  def pool_end_session(_pool, _session_id), do: :erlang.nif_error(:nif_not_loaded)
  def pool_session_info(_pool, _session_id), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/pool.rs — pool_*: introspection
  def pool_stats(_pool), do: :erlang.nif_error(:nif_not_loaded)
  def pool_workers(_pool), do: :erlang.nif_error(:nif_not_loaded)
  def pool_os_pids(_pool), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/beam.rs — beam_worker_*: BEAM workers (Snakepit.BeamWorker, Snakepit.BeamWorkers)
  def beam_worker_ready(_pool, _uid), do: :erlang.nif_error(:nif_not_loaded)
  def beam_worker_reply(_pool, _slot, _uid, _id, _answer), do: :erlang.nif_error(:nif_not_loaded)
  def beam_worker_exit(_pool, _uid, _exit), do: :erlang.nif_error(:nif_not_loaded)

  # src/nif/codec.rs — json_* / codec_*: results are decoded in the caller; codec_to_json shows what a
  # worker receives
  def json_decode(_json), do: :erlang.nif_error(:nif_not_loaded)
  def json_decode_dirty(_json), do: :erlang.nif_error(:nif_not_loaded)
  def codec_to_json(_term), do: :erlang.nif_error(:nif_not_loaded)
end
