defmodule Snakepit.Native do
  @moduledoc false
  # Stubs for the NIFs in native/snakepit_rs (src/nif.rs). Results of the pool_* functions that
  # can fail carry `{reason, message, details}`, which `Snakepit.Error.from_native/1` converts.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:snakepit_rs), ~c"native/libsnakepit_rs")
    :erlang.load_nif(path, 0)
  end

  # pool life cycle
  def pool_start(_config, _owner), do: :erlang.nif_error(:nif_not_loaded)
  def pool_stop(_pool), do: :erlang.nif_error(:nif_not_loaded)

  # requests
  def pool_submit(_pool, _tag, _command, _args, _session_id, _timeout_ms),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_submit_dirty(_pool, _tag, _command, _args, _session_id, _timeout_ms),
    do: :erlang.nif_error(:nif_not_loaded)

  def pool_check_deadline(_pool, _request_id), do: :erlang.nif_error(:nif_not_loaded)

  # introspection
  def pool_stats(_pool), do: :erlang.nif_error(:nif_not_loaded)
  def pool_workers(_pool), do: :erlang.nif_error(:nif_not_loaded)
  def pool_os_pids(_pool), do: :erlang.nif_error(:nif_not_loaded)

  # codec: results are decoded in the caller; codec_to_json shows what a worker receives
  def json_decode(_json), do: :erlang.nif_error(:nif_not_loaded)
  def json_decode_dirty(_json), do: :erlang.nif_error(:nif_not_loaded)
  def codec_to_json(_term), do: :erlang.nif_error(:nif_not_loaded)
end
