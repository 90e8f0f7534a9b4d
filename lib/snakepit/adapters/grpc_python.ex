defmodule Snakepit.Adapters.GRPCPython do
  @moduledoc """
  The Python adapter under upstream Snakepit's name, so that `adapter_module:
  Snakepit.Adapters.GRPCPython` keeps working. There is no gRPC: workers run the stdlib-only
  bridge of `Snakepit.Adapters.Python` over protocol v1, with the same options.

  One difference from `Snakepit.Adapters.Python`, kept from upstream: a pool given no
  `:adapter_args` runs the bridge's showcase adapter
  (`snakepit_bridge.adapters.showcase.ShowcaseAdapter`), as upstream's `GRPCPython` does, so
  that upstream's examples find its tools; `Snakepit.Adapters.Python` runs a bare adapter
  (built-in commands only) then.

  Upstream's functions that user code calls are here too, reading the `:snakepit` application
  environment as upstream does: `executable_path/0`, `script_path/0`, `script_args/0`,
  `uses_grpc?/0` and `grpc_available?/0` (both `false`). Upstream's `command_timeout/2` is not
  defined, so a pool's `:timeout` applies to every command.
  """

  @behaviour Snakepit.Adapter

  alias Snakepit.Adapters.Python

  @showcase ["--adapter", "snakepit_bridge.adapters.showcase.ShowcaseAdapter"]

  ## The pool's side: `Snakepit.Adapters.Python`, with the showcase as the default adapter

  @impl true
  def executable_path(opts), do: Python.executable_path(opts)

  @impl true
  def script_args(opts),
    do: Python.script_args(Keyword.put(opts, :adapter_args, adapter_args(opts)))

  @impl true
  def env(opts), do: Python.env(opts)

  @impl true
  def init(opts), do: Python.init(opts)

  @impl true
  def supports_streaming?, do: true

  ## Upstream's functions

  @doc """
  The Python interpreter workers run: `config :snakepit, python_executable: ...`, else
  `$SNAKEPIT_PYTHON`, else `python3` on `PATH`, resolved to the real binary; `nil` when none
  is found (as upstream).
  """
  @impl true
  @spec executable_path() :: String.t() | nil
  def executable_path do
    [python_executable: Application.get_env(:snakepit, :python_executable)]
    |> Python.requested_interpreter()
    |> Python.resolve_interpreter()
  rescue
    ArgumentError -> nil
  end

  @doc """
  The bridge's entry module (`priv/python/snakepit_bridge/__main__.py`). Workers run it as
  `python -m snakepit_bridge` with `Snakepit.Adapters.Python.bridge_path/0` on `PYTHONPATH`
  (it uses relative imports, so it cannot run as a plain script path).
  """
  @impl true
  @spec script_path() :: String.t()
  def script_path, do: Path.join([Python.bridge_path(), "snakepit_bridge", "__main__.py"])

  @doc """
  The bridge's arguments: `pool_config: %{adapter_args: ...}` from the `:snakepit` application
  environment, else the showcase adapter's.
  """
  @impl true
  @spec script_args() :: [String.t()]
  def script_args do
    pool_config = Application.get_env(:snakepit, :pool_config, %{})

    case pool_config[:adapter_args] do
      args when is_list(args) and args != [] -> args
      _ -> @showcase
    end
  end

  @doc "Whether workers speak gRPC: never here."
  @impl true
  @spec uses_grpc?() :: false
  def uses_grpc?, do: false

  @doc "Whether upstream's gRPC libraries are loaded: never needed here."
  @spec grpc_available?() :: false
  def grpc_available?, do: false

  defp adapter_args(opts) do
    case Keyword.get(opts, :adapter_args, []) do
      [] -> @showcase
      args -> args
    end
  end
end
