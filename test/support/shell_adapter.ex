defmodule Snakepit.ShellAdapter do
  @moduledoc """
  Test adapter: runs `adapter_args: [script]` with `/bin/sh -c`, so a test can make a worker's
  start depend on a file (e.g. fail while a marker exists) and `exec` the test worker otherwise.
  """

  @behaviour Snakepit.Adapter

  @impl true
  def executable_path(_opts), do: "/bin/sh"

  @impl true
  def script_args(opts), do: ["-c" | Keyword.fetch!(opts, :adapter_args)]

  @impl true
  def env(_opts), do: []
end
