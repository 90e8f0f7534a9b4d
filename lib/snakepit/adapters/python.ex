defmodule Snakepit.Adapters.Python do
  @moduledoc """
  Runs `priv/python/snakepit_bridge` with a Python interpreter.

  Options read from the pool's options:

    * `:python_executable` - interpreter to use; default: `$SNAKEPIT_PYTHON`, else `python3` on
      `PATH`. A launcher such as a pyenv shim costs tens of milliseconds per spawn, so the
      interpreter is resolved once to the real binary (`sys.executable`) and that is spawned.
    * `:adapter_args` - arguments for the bridge, e.g.
      `["--adapter", "my_package.my_module.MyAdapter"]`.
    * `:env` - extra environment.

  Workers inherit the BEAM's environment. Their `PYTHONPATH` is, in search order: the bridge's
  own directory, the pool's `PYTHONPATH` (from `:env`), then the BEAM's `PYTHONPATH` (e.g.
  `export PYTHONPATH=...` before starting it, upstream Snakepit's documented route): the
  pool's setting is more specific than the machine's, and neither can hide the bridge.
  """

  @behaviour Snakepit.Adapter

  @default_timeout 10_000

  @impl true
  def executable_path(opts) do
    resolve_interpreter(
      requested_interpreter(opts),
      Keyword.get(opts, :startup_timeout, @default_timeout)
    )
  end

  @doc """
  The interpreter a pool with options `opts` asks for, before it is resolved:
  `:python_executable`, else `$SNAKEPIT_PYTHON`, else `"python3"`.
  """
  @spec requested_interpreter(keyword()) :: String.t()
  def requested_interpreter(opts),
    do: Keyword.get(opts, :python_executable) || System.get_env("SNAKEPIT_PYTHON") || "python3"

  @impl true
  def script_args(opts), do: ["-m", "snakepit_bridge" | Keyword.get(opts, :adapter_args, [])]

  @impl true
  def env(opts) do
    pool_paths = for {"PYTHONPATH", path} <- Keyword.get(opts, :env, []), do: path

    python_path =
      [bridge_path() | pool_paths ++ [System.get_env("PYTHONPATH")]]
      |> Enum.reject(&(&1 in [nil, ""]))
      |> Enum.uniq()
      |> Enum.join(":")

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
  and cached for the life of the VM. An interpreter that does not answer within `timeout` ms is
  killed (it leaves no process) and `ArgumentError` is raised.
  """
  @spec resolve_interpreter(String.t(), pos_integer()) :: String.t()
  def resolve_interpreter(executable, timeout \\ @default_timeout) do
    key = {__MODULE__, :interpreter, executable}

    case :persistent_term.get(key, nil) do
      nil ->
        resolved = ask_interpreter(executable, timeout)
        :persistent_term.put(key, resolved)
        resolved

      resolved ->
        resolved
    end
  end

  defp ask_interpreter(executable, timeout) do
    path =
      System.find_executable(executable) ||
        raise ArgumentError, "Python interpreter #{inspect(executable)} not found"

    port =
      Port.open({:spawn_executable, path}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["-c", "import sys; print(sys.executable)"]
      ])

    deadline = System.monotonic_time(:millisecond) + timeout

    case collect_output(port, deadline, []) do
      {output, 0} ->
        case String.trim(output) do
          "" -> path
          real -> real
        end

      {output, status} when is_integer(status) ->
        raise ArgumentError,
              "Python interpreter #{inspect(path)} failed (status #{status}): #{output}"

      :timeout ->
        kill(port)

        raise ArgumentError,
              "Python interpreter #{inspect(path)} did not say where it is " <>
                "(sys.executable) within #{timeout} ms (:startup_timeout); it was killed"
    end
  end

  defp collect_output(port, deadline, acc) do
    receive do
      {^port, {:data, data}} -> collect_output(port, deadline, [acc | data])
      {^port, {:exit_status, status}} -> {IO.iodata_to_binary(acc), status}
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> :timeout
    end
  end

  # SIGKILL, then wait for the exit status: the BEAM has reaped the process once it reports it,
  # so nothing of the lookup outlives this call.
  defp kill(port) do
    case Port.info(port, :os_pid) do
      {:os_pid, os_pid} ->
        System.cmd("kill", ["-KILL", Integer.to_string(os_pid)], stderr_to_stdout: true)
        await_exit(port)

      nil ->
        :ok
    end
  end

  defp await_exit(port) do
    receive do
      {^port, {:data, _}} -> await_exit(port)
      {^port, {:exit_status, _}} -> :ok
    after
      1_000 -> Port.close(port)
    end
  end
end
