defmodule Snakepit.Adapters.Executable do
  @moduledoc """
  Runs any program that speaks protocol v1 (`docs/protocol.md`) as the pool's workers: the
  first of the pool's `:adapter_args` is the program (a path, or a name looked up on `PATH`),
  the rest are its arguments.

      Snakepit.Pool.start_link(
        name: :node_pool,
        size: 4,
        adapter_module: Snakepit.Adapters.Executable,
        adapter_args: ["node", "examples/node_worker/worker.js"]
      )

  The worker gets the pool's `:env` on top of the BEAM's environment (the pool adds it), its requests on fd 3,
  replies on fd 4 and control frames on fd 5, and the `SNAKEPIT_*` variables the protocol
  lists. `examples/node_worker/` is such a worker, in Node.js.
  """

  @behaviour Snakepit.Adapter

  @usage ":adapter_args: [program | args], e.g. [\"node\", \"worker.js\"]"

  @doc "The program: the first of `:adapter_args`, resolved on `PATH` when it is a bare name."
  @impl true
  @spec executable_path(keyword()) :: String.t()
  def executable_path(opts) do
    case Keyword.get(opts, :adapter_args, []) do
      [program | _] when is_binary(program) ->
        resolve(program)

      other ->
        raise ArgumentError, "#{inspect(__MODULE__)} needs #{@usage}, got: #{inspect(other)}"
    end
  end

  @doc "The program's arguments: the rest of `:adapter_args`."
  @impl true
  @spec script_args(keyword()) :: [String.t()]
  def script_args(opts) do
    case Keyword.get(opts, :adapter_args, []) do
      [_program | args] -> args
      [] -> []
    end
  end

  @doc "Checks that the program exists and can be run: `:ok` or `{:error, message}`."
  @impl true
  @spec init(keyword()) :: :ok | {:error, String.t()}
  def init(opts) do
    executable_path(opts)
    :ok
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  defp resolve(program) do
    path =
      if String.contains?(program, "/"),
        do: Path.expand(program),
        else: System.find_executable(program)

    cond do
      path == nil ->
        raise ArgumentError, "#{inspect(__MODULE__)}: no program #{inspect(program)} on PATH"

      not executable?(path) ->
        raise ArgumentError, "#{inspect(__MODULE__)}: #{inspect(path)} is not an executable file"

      true ->
        path
    end
  end

  defp executable?(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :regular, mode: mode}} -> Bitwise.band(mode, 0o111) != 0
      _ -> false
    end
  end
end
