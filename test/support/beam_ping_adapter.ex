defmodule Snakepit.BeamPingAdapter do
  @moduledoc """
  An `execute/3` adapter for tests: its workers are BEAM processes (no OS process, so no
  `os_pid` nor memory to report) that answer `ping` with `"pong"`.
  """
  @behaviour Snakepit.Adapter

  @doc false
  def execute("ping", _args, _opts), do: {:ok, "pong"}
  @doc false
  def init(_config), do: {:ok, %{}}
  @doc false
  def terminate(_reason, _state), do: :ok
end
