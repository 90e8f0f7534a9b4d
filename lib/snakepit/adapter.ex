defmodule Snakepit.Adapter do
  @moduledoc """
  What a pool runs: its workers' program, or Elixir code run in the BEAM.

  A pool accepts an adapter written in any of three styles; `launch/2` is the one place that
  tells them apart (first match wins):

  1. **snakepit_rs's own** — `executable_path/1`, `script_args/1`, `env/1` (optional), `init/1`
     (optional), each given the pool's options (see `Snakepit.Pool`), so an adapter can read
     its settings from `:adapter_args` or any other key. Workers are OS processes speaking
     protocol v1 (`docs/protocol.md`: requests on fd 3, replies on fd 4).
     `Snakepit.Adapters.Python` (the default) runs the stdlib-only Python bridge in
     `priv/python/snakepit_bridge`; `Snakepit.Adapters.GRPCPython` is the same under upstream
     Snakepit's name. The callbacks run in the pool's process before it starts workers and
     must return within the pool's `:startup_timeout` (an adapter that asks something of an
     external program bounds the wait by it and kills the program when it overruns, as
     `Snakepit.Adapters.Python` does). Here `init/1` is called once per pool and returns `:ok`
     or `{:error, message}`.

  2. **Upstream Snakepit's** (v0.4.3 and v0.13.0) — `executable_path/0`, `script_path/0`,
     `script_args/0`. Each worker runs `executable_path() script_path() args...`, where `args`
     are the pool's `:adapter_args` when given and `script_args()` otherwise (v0.13's rule).
     The program must speak protocol v1 (upstream's gRPC server does not). Optional
     `command_timeout/2`, `prepare_args/2` and `process_response/2` apply to every request (see
     below); `supported_commands/0`, `validate_command/2` and `uses_grpc?/0` are accepted and
     not called.

  3. **The design documents' `execute/3`** — such as the mock adapter the Snakepit Core
     specification shows for tests:

         defmodule MyApp.MockAdapter do
           @behaviour Snakepit.Adapter
           def execute("ping", _args, _opts), do: {:ok, %{status: "pong"}}
           def execute("error", _args, _opts), do: {:error, "simulated error"}
           def init(_config), do: {:ok, %{}}
           def terminate(_reason, _state), do: :ok
         end

     Its work is done in the BEAM, with no OS process: each worker is a `Snakepit.BeamWorker`
     process (one adapter instance per worker: `init/1` runs in it, with the pool's options,
     and must return `{:ok, state}`, `:ok` or `{:error, reason}`; `terminate/2` runs when the
     worker is stopped). The pool serves it as it serves OS workers: queue, `:queue_timeout`,
     `:timeout`, health checks (answered by the worker process itself, never by the adapter),
     recycling, stats. What `execute/3` gets and what its caller gets back:

       * `args` arrive as a Python worker would receive them: encoded to JSON by the pool and
         decoded again, so maps have string keys (`%{"a" => 1}` for `%{a: 1}`), and args that
         JSON cannot carry are refused with `:invalid_args` before anything runs.
       * `opts` are `[worker_id: id, session_id: session_id_or_nil]`.
       * `{:ok, result}` reaches the caller as it is (no JSON round trip: atom keys stay).
       * `{:error, reason}` becomes `%Snakepit.Error{reason: :worker_error}` whose message is
         `reason` (a string) or `inspect(reason)`, with type `"AdapterError"`.
       * A raise (or throw) becomes `:worker_error` with the exception's module as its type,
         its message and the formatted stacktrace as its traceback; the worker keeps serving,
         as a Python worker does after an exception. No clause of `execute/3` for the command
         is `:unknown_command`. Any other return is `:worker_error` of type `"BadReturn"`.
       * A worker process that exits (an `exit/1` in `execute/3`, a linked process's crash,
         a kill) fails its request with `:worker_crashed` and is replaced.
       * A request running past its `:timeout` fails with `:timeout` at once; its worker gets
         `{:snakepit_cancel, id}` (which it sees only once `execute/3` returns) and, if still
         busy after `:cancel_grace`, is killed and replaced.
       * `Snakepit.list_workers/1` shows such a worker with `os_pid: nil` and its process as
         `pid`; its life-cycle events carry `nil` where an OS pid would be.
       * `execute_stream/4` and `supports_streaming?/0` are accepted; streaming is not served
         yet.

  ## Request-path callbacks

  When an adapter defines them (any style):

    * `command_timeout(command, args)` - the execution timeout of a call given no `:timeout`
      (instead of the pool's `:timeout`); a raise, or a value that is not a positive integer,
      falls back to the pool's.
    * `prepare_args(command, args)` - the args actually sent; must return a map.
    * `process_response(command, result)` - applied to every successful result; returns
      `{:ok, result}` or `{:error, reason}` (then `%Snakepit.Error{reason: :invalid_result}`).

  They run in the caller's process. A pool whose adapter defines none of them pays nothing for
  them beyond one lookup per call.
  """

  @typedoc "How a pool runs an adapter's workers: an OS program, or BEAM processes."
  @type launch ::
          {:process,
           %{executable: String.t(), args: [String.t()], env: [{String.t(), String.t()}]}}
          | :beam

  @typedoc "The three styles of adapter, see the module doc."
  @type style :: :snakepit_rs | :upstream | :beam

  ## snakepit_rs's style

  @doc "Absolute path (or name on `PATH`) of the program each worker runs."
  @callback executable_path(opts :: keyword()) :: String.t()

  @doc "Arguments given to the program."
  @callback script_args(opts :: keyword()) :: [String.t()]

  @doc "Environment for the program, on top of the BEAM's (default: none)."
  @callback env(opts :: keyword()) :: [{String.t(), String.t()}]

  @doc """
  snakepit_rs's style: called once before the pool starts its workers; may check that the
  program exists (`:ok` or `{:error, message}`). `execute/3` style: called in each worker
  process before it takes requests (`{:ok, state}`, `:ok` or `{:error, reason}`).
  """
  @callback init(opts :: keyword()) :: :ok | {:ok, term()} | {:error, term()}

  @doc "Whether the workers implement streaming commands."
  @callback supports_streaming?() :: boolean()

  ## Upstream Snakepit's style (v0.4.3, v0.13.0)

  @doc "Upstream: the interpreter or runtime each worker runs."
  @callback executable_path() :: String.t() | nil

  @doc "Upstream: the script the runtime runs (its first argument)."
  @callback script_path() :: String.t() | nil

  @doc "Upstream: the script's arguments, used when the pool has no `:adapter_args`."
  @callback script_args() :: [String.t()] | nil

  @doc "Upstream: the execution timeout (ms) of a call given no `:timeout`."
  @callback command_timeout(command :: String.t(), args :: map()) :: pos_integer()

  @doc "Upstream: the args actually sent for `command`."
  @callback prepare_args(command :: String.t(), args :: map()) :: map()

  @doc "Upstream: post-processes a successful result."
  @callback process_response(command :: String.t(), response :: term()) ::
              {:ok, term()} | {:error, term()}

  @doc "Upstream v0.4.3: the commands the adapter supports (not called)."
  @callback supported_commands() :: [String.t()]

  @doc "Upstream v0.4.3: validates a command (not called)."
  @callback validate_command(command :: String.t(), args :: map()) :: :ok | {:error, term()}

  @doc "Design documents: whether the adapter uses gRPC (not called; there is no gRPC here)."
  @callback uses_grpc?() :: boolean()

  ## The design documents' style: work done in the BEAM

  @doc "Runs `command` in a worker process; see the module doc."
  @callback execute(command :: String.t(), args :: map(), opts :: keyword()) ::
              {:ok, term()} | {:error, term()}

  @doc "A streaming command (accepted; streaming is not served yet)."
  @callback execute_stream(
              command :: String.t(),
              args :: map(),
              callback :: (term() -> any()),
              opts :: keyword()
            ) :: :ok | {:error, term()}

  @doc "Called when a worker process stops, with the state `init/1` returned."
  @callback terminate(reason :: term(), state :: term()) :: term()

  @optional_callbacks executable_path: 1,
                      script_args: 1,
                      env: 1,
                      init: 1,
                      supports_streaming?: 0,
                      executable_path: 0,
                      script_path: 0,
                      script_args: 0,
                      command_timeout: 2,
                      prepare_args: 2,
                      process_response: 2,
                      supported_commands: 0,
                      validate_command: 2,
                      uses_grpc?: 0,
                      execute: 3,
                      execute_stream: 4,
                      terminate: 2

  @doc """
  The style `adapter` is written in (see the module doc), or `nil` if it is no adapter a pool
  can run (not a loaded module, or none of `executable_path/1`, `executable_path/0`,
  `execute/3`).
  """
  @spec style(term()) :: style() | nil
  def style(adapter) when is_atom(adapter) and adapter != nil do
    cond do
      not Code.ensure_loaded?(adapter) -> nil
      function_exported?(adapter, :executable_path, 1) -> :snakepit_rs
      function_exported?(adapter, :executable_path, 0) -> :upstream
      function_exported?(adapter, :execute, 3) -> :beam
      true -> nil
    end
  end

  def style(_adapter), do: nil

  @doc """
  How a pool with `opts` (its validated options) runs `adapter`'s workers: the program, its
  arguments and environment, or `:beam`. Calls the adapter's callbacks (`init/1` first, for
  snakepit_rs's style); an error or a raise is `{:error, message}`.
  """
  @spec launch(module(), keyword()) :: {:ok, launch()} | {:error, String.t()}
  def launch(adapter, opts) do
    case style(adapter) do
      :snakepit_rs -> launch_own(adapter, opts)
      :upstream -> launch_upstream(adapter, opts)
      :beam -> {:ok, :beam}
      nil -> {:error, "#{inspect(adapter)} is not a Snakepit.Adapter"}
    end
  rescue
    error -> {:error, "adapter #{inspect(adapter)}: #{Exception.message(error)}"}
  end

  defp launch_own(adapter, opts) do
    with :ok <- own_init(adapter, opts) do
      {:ok,
       {:process,
        %{
          executable: adapter.executable_path(opts),
          args: optional(adapter, :script_args, [opts], []),
          env: optional(adapter, :env, [opts], [])
        }}}
    end
  end

  defp own_init(adapter, opts) do
    case optional(adapter, :init, [opts], :ok) do
      :ok -> :ok
      {:error, message} when is_binary(message) -> {:error, message}
      other -> {:error, "init/1 of #{inspect(adapter)} returned #{inspect(other)}"}
    end
  end

  # v0.13: the pool's adapter_args win over the adapter's script_args/0.
  defp launch_upstream(adapter, opts) do
    executable =
      adapter.executable_path() ||
        raise ArgumentError, "executable_path/0 returned nil (no executable found)"

    args =
      case Keyword.get(opts, :adapter_args, []) do
        [] -> optional(adapter, :script_args, [], nil) || []
        adapter_args -> adapter_args
      end

    script = optional(adapter, :script_path, [], nil)

    {:ok,
     {:process,
      %{
        executable: to_string(executable),
        args: Enum.map(List.wrap(script) ++ args, &to_string/1),
        env: []
      }}}
  end

  defp optional(adapter, function, args, default) do
    if function_exported?(adapter, function, length(args)),
      do: apply(adapter, function, args),
      else: default
  end

  @doc "Upstream v0.4.3's default `process_response/2`: the response as it is."
  @spec default_process_response(String.t(), term()) :: {:ok, term()}
  def default_process_response(_command, response), do: {:ok, response}

  @doc "Upstream v0.4.3's default `prepare_args/2`: the args as they are."
  @spec default_prepare_args(String.t(), map()) :: map()
  def default_prepare_args(_command, args), do: args

  @doc "Upstream v0.4.3's default `command_timeout/2`: 30 s."
  @spec default_command_timeout(String.t(), map()) :: pos_integer()
  def default_command_timeout(_command, _args), do: 30_000
end
