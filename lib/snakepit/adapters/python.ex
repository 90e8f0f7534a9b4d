defmodule Snakepit.Adapters.Python do
  @moduledoc """
  Runs `priv/python/snakepit_bridge` with a Python interpreter.

  Options read from the pool's options:

    * `:python_executable` - interpreter to use; default: `$SNAKEPIT_PYTHON`, else `python3` on
      `PATH`. A launcher such as a pyenv shim costs tens of milliseconds per spawn, so the
      interpreter is resolved once to the real binary (`sys.executable`) and that is spawned.
    * `:adapter_args` - arguments for the bridge, e.g.
      `["--adapter", "my_package.my_module.MyAdapter"]`.
    * `:env` - extra environment; a `PYTHONPATH` given there is searched after the bridge's own
      directory.
  """

  @behaviour Snakepit.Adapter

  @impl true
  def executable_path(opts) do
    requested =
      Keyword.get(opts, :python_executable) || System.get_env("SNAKEPIT_PYTHON") || "python3"

    resolve_interpreter(requested)
  end

  @impl true
  def script_args(opts), do: ["-m", "snakepit_bridge" | Keyword.get(opts, :adapter_args, [])]

  @impl true
  def env(opts) do
    user_env = Keyword.get(opts, :env, [])

    python_path =
      Enum.join(
        [bridge_path() | for({"PYTHONPATH", path} <- user_env, path != "", do: path)],
        ":"
      )

    [
      {"PYTHONPATH", python_path},
      {"PYTHONUNBUFFERED", "1"},
      {"PYTHONDONTWRITEBYTECODE", "1"}
    ]
  end

  @impl true
  def init(opts) do
    executable_path(opts)
    :ok
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  @impl true
  def supports_streaming?, do: true

  @doc "Directory holding the `snakepit_bridge` package."
  @spec bridge_path() :: String.t()
  def bridge_path, do: Path.join(:code.priv_dir(:snakepit_rs), "python")

  @doc """
  The interpreter binary behind `executable` (a name on `PATH` or a path), asked of Python itself
  and cached for the life of the VM.
  """
  @spec resolve_interpreter(String.t()) :: String.t()
  def resolve_interpreter(executable) do
    key = {__MODULE__, :interpreter, executable}

    case :persistent_term.get(key, nil) do
      nil ->
        resolved = ask_interpreter(executable)
        :persistent_term.put(key, resolved)
        resolved

      resolved ->
        resolved
    end
  end

  defp ask_interpreter(executable) do
    path =
      System.find_executable(executable) ||
        raise ArgumentError, "Python interpreter #{inspect(executable)} not found"

    case System.cmd(path, ["-c", "import sys; print(sys.executable)"], stderr_to_stdout: true) do
      {output, 0} ->
        case String.trim(output) do
          "" -> path
          real -> real
        end

      {output, status} ->
        raise ArgumentError,
              "Python interpreter #{inspect(path)} failed (status #{status}): #{output}"
    end
  end
end
