defmodule Snakepit.Error do
  @moduledoc """
  The error every Snakepit call returns as `{:error, %Snakepit.Error{}}`, in upstream Snakepit
  v0.13's shape plus a `:reason` atom.

    * `:reason` - an atom to match on, see below
    * `:category` - upstream's categories: `:validation`, `:pool`, `:timeout`, `:worker`,
      `:python_error` (and `:grpc_error`, which snakepit_rs never returns: it has no gRPC)
    * `:message` - readable text
    * `:details` - a map with atom keys; `details.reason` is always there (see below for what it
      holds), and calls add `command`, `pool` and, when the pool has a name, `pool_name`
    * `:python_traceback` - the Python traceback of an error raised by the worker's code, else
      `nil`
    * `:grpc_status` - always `nil` (upstream's gRPC status)

  Match on either:

      case Snakepit.execute("predict", %{x: 1}) do
        {:ok, result} -> result
        {:error, %Snakepit.Error{category: :timeout}} -> retry()
        {:error, %Snakepit.Error{reason: :pool_saturated}} -> shed_load()
        {:error, %Snakepit.Error{category: :python_error} = error} -> log(error.python_traceback)
      end

  ## Reasons

  | reason | category | meaning |
  |---|---|---|
  | `:invalid_command` | validation | the command is not a non-empty printable string |
  | `:invalid_args` | validation | args are not a map, a keyword list or `nil`, or hold a term that cannot become JSON (the message says what and where; see `Snakepit.execute/3`) |
  | `:args_too_large` | validation | the encoded request exceeds `:max_frame_size` |
  | `:invalid_option` | validation | a call option is invalid (`details.option` names it) |
  | `:unsupported_call` | validation | a `GenServer.call/3` to a pool's process that it does not answer |
  | `:invalid_session_id` | validation | a session id is not 1 to 256 characters of `A-Za-z0-9_-` (see `Snakepit.SessionId`) |
  | `:streaming_not_supported` | validation | `Snakepit.execute_stream/4` of a command that is not a streaming tool (it did not run), or on a pool whose workers cannot stream (an Elixir adapter's) |
  | `:callback_exception` | pool | a stream's callback raised (upstream's reason; `details.reason` is `{:callback_exception, exception, stacktrace}`) |
  | `:pool_saturated` | pool | `:max_queue_size` requests are already waiting |
  | `:pool_not_initialized` | pool | the pool is not running, or none of its workers could start |
  | `:pool_not_found` | pool | `pool_name:` names no running pool (upstream's reason) |
  | `:pool_shutdown` | pool | the pool stopped before the request finished |
  | `:circuit_open` | pool | no worker runs and the last `:max_start_failures` starts failed |
  | `:worker_busy` | pool | `affinity: :strict_fail_fast`: the session's worker is busy; nothing was queued |
  | `:session_worker_unavailable` | pool | strict affinity: the session's worker is gone (exited or recycled), and the state kept there with it (see `Snakepit.execute_in_session/4`) |
  | `:queue_timeout` | timeout | no worker became free within `:queue_timeout`; the request never ran |
  | `:timeout` | timeout | the command ran longer than its `:timeout` (a stream: or sent nothing for its `:chunk_timeout`) (or, for a pool that is not a snakepit_rs pool, it did not answer within it) |
  | `:worker_crashed` | worker | the worker process died while running the request |
  | `:protocol_error` | worker | the worker broke the wire protocol and was replaced |
  | `:invalid_result` | worker | the result cannot become a term (nested deeper than args may nest, 128 levels; a lone surrogate in a string); the worker stays |
  | `:worker_error` | python_error | the command raised; see below |
  | `:unknown_command` | python_error | the worker has no such command (upstream's Python raises `AttributeError` there) |

  Another process given as `:pool` (a pid or name that is not a snakepit_rs pool, e.g. a stub in
  a test) is called with `{:execute, command, args, opts}` as upstream does, and its bare error
  reasons are converted as upstream v0.13 converts them:

  | reason | category |
  |---|---|
  | `:queue_timeout`, `:worker_timeout` | timeout |
  | `:pool_not_found` (also `{:pool_not_found, name}`, which sets `details.pool_name`), `:worker_busy`, `:session_worker_unavailable`, `:no_workers_available`, and any atom not in the table above | pool |
  | `:worker_exit` (from `{:worker_exit, exit_reason}`, which sets `details.exit_reason`) | worker |
  | `:request_failed`: anything else (`details.reason` holds it) | worker |

  An atom of the table above keeps its category; a tuple `{atom, ...}` becomes the reason `atom`
  (`details.reason` holds the tuple); a `Snakepit.Error.PythonException` or mapped exception
  struct becomes a `:worker_error` as below.

  The constructors upstream provides (`worker_error/2`, `timeout_error/2`, `python_error/4`,
  `grpc_error/3`, `pool_error/2`, `validation_error/2`) take the reason from `details.reason`
  when it is an atom, else: `:worker`, `:timeout`, `:worker_error`, `:grpc_error`, `:pool`,
  `:validation` respectively (each in its constructor's category).

  ## Errors raised by the worker's code

  A Python exception in a tool arrives with reason `:worker_error`, category `:python_error`,
  the message `"ValueError: text"`, `python_traceback` set, and in `details`: `type` and
  `exception_type` (the exception's class name), `message`, `traceback`, and `reason`: the
  exception as upstream's struct - `Snakepit.Error.ValueError`, `KeyError`, `IndexError`,
  `TypeError`, `AttributeError`, `ImportError`, `RuntimeError`, `NotImplementedError`,
  `FileNotFoundError`, `PermissionError`, `ZeroDivisionError`, or `Snakepit.Error.PythonException`
  for any other class (see `Snakepit.Error.PythonException`). This is where upstream v0.13 puts
  it too: its `Snakepit.execute/3` wraps the struct the same way, in `details.reason` of a
  `%Snakepit.Error{}`, so every call's error is a `%Snakepit.Error{}`:

      {:error, %Snakepit.Error{details: %{reason: %Snakepit.Error.ValueError{message: text}}}}
  """

  alias Snakepit.Error.PythonException

  defexception [
    :reason,
    :category,
    :message,
    details: %{},
    python_traceback: nil,
    grpc_status: nil
  ]

  @type reason :: atom()
  @type category :: :validation | :pool | :timeout | :worker | :python_error | :grpc_error
  @type t :: %__MODULE__{
          reason: reason(),
          category: category(),
          message: String.t(),
          details: map(),
          python_traceback: String.t() | nil,
          grpc_status: atom() | nil
        }

  @categories %{
    invalid_command: :validation,
    invalid_args: :validation,
    args_too_large: :validation,
    invalid_option: :validation,
    unsupported_call: :validation,
    invalid_session_id: :validation,
    pool_saturated: :pool,
    pool_not_initialized: :pool,
    pool_not_found: :pool,
    pool_shutdown: :pool,
    circuit_open: :pool,
    # Streams (`Snakepit.execute_stream/4`): upstream's "Streaming not supported by adapter" is
    # a validation error.
    streaming_not_supported: :validation,
    # Session affinity (`Snakepit.execute_in_session/4`).
    worker_busy: :pool,
    session_worker_unavailable: :pool,
    queue_timeout: :timeout,
    timeout: :timeout,
    worker_crashed: :worker,
    protocol_error: :worker,
    invalid_result: :worker,
    worker_error: :python_error,
    unknown_command: :python_error,
    # Reasons of upstream's pools, met when another process is given as `:pool`.
    worker_timeout: :timeout,
    worker_exit: :worker,
    request_failed: :worker
  }

  @doc """
  Builds an error for `reason`, in the reason's category (`:pool` for a reason not listed in the
  module doc, as upstream does). `details.reason` is set to `reason` unless `details` has one.
  """
  @spec new(reason(), String.t(), map()) :: t()
  def new(reason, message, details \\ %{}) when is_atom(reason) and is_binary(message) do
    build(reason, Map.get(@categories, reason, :pool), message, details)
  end

  @impl true
  def message(%__MODULE__{reason: reason, message: message}), do: "#{reason}: #{message}"

  ## Upstream's constructors

  @doc "An error of category `:worker` (upstream's constructor)."
  @spec worker_error(String.t(), map()) :: t()
  def worker_error(message, details \\ %{}), do: construct(:worker, :worker, message, details)

  @doc "An error of category `:timeout` (upstream's constructor)."
  @spec timeout_error(String.t(), map()) :: t()
  def timeout_error(message, details \\ %{}), do: construct(:timeout, :timeout, message, details)

  @doc "An error of category `:pool` (upstream's constructor)."
  @spec pool_error(String.t(), map()) :: t()
  def pool_error(message, details \\ %{}), do: construct(:pool, :pool, message, details)

  @doc "An error of category `:validation` (upstream's constructor)."
  @spec validation_error(String.t(), map()) :: t()
  def validation_error(message, details \\ %{}),
    do: construct(:validation, :validation, message, details)

  @doc """
  An error of category `:python_error` for an exception `exception_type` (upstream's
  constructor): the message is `"exception_type: message"`, `details.exception_type` is set.
  """
  @spec python_error(String.t(), String.t(), String.t() | nil, map()) :: t()
  def python_error(exception_type, message, traceback, details \\ %{}) do
    details = Map.put(details, :exception_type, exception_type)
    error = construct(:python_error, :worker_error, "#{exception_type}: #{message}", details)
    %{error | python_traceback: traceback}
  end

  @doc "An error of category `:grpc_error` (upstream's constructor; snakepit_rs has no gRPC)."
  @spec grpc_error(atom(), String.t(), map()) :: t()
  def grpc_error(status, message, details \\ %{}) do
    %{construct(:grpc_error, :grpc_error, message, details) | grpc_status: status}
  end

  ## Normalizing bare results

  @doc """
  Turns `{:error, reason}` with a bare reason (an atom, a tuple, anything but a
  `%Snakepit.Error{}`) into `{:error, %Snakepit.Error{}}` as upstream v0.13 does, with
  `metadata` in `details`; `:ok`, `{:ok, _}` and `{:error, %Snakepit.Error{}}` pass unchanged.
  """
  @spec normalize_public_result(:ok | {:ok, term()} | {:error, term()}, map()) ::
          :ok | {:ok, term()} | {:error, t()}
  def normalize_public_result(result, metadata \\ %{})
  def normalize_public_result(:ok, _metadata), do: :ok
  def normalize_public_result({:ok, _} = result, _metadata), do: result
  def normalize_public_result({:error, %__MODULE__{}} = result, _metadata), do: result

  def normalize_public_result({:error, reason}, metadata),
    do: {:error, normalize_public_error(reason, metadata)}

  @doc "The `%Snakepit.Error{}` for a bare error reason; see `normalize_public_result/2`."
  @spec normalize_public_error(term(), map()) :: t()
  def normalize_public_error(reason, metadata \\ %{})
  def normalize_public_error(%__MODULE__{} = error, _metadata), do: error

  def normalize_public_error({:pool_not_found, pool_name}, metadata),
    do: normalize_public_error(:pool_not_found, Map.put(metadata, :pool_name, pool_name))

  def normalize_public_error({:worker_exit, exit_reason}, metadata),
    do: new(:worker_exit, "Worker process exited", Map.put(metadata, :exit_reason, exit_reason))

  def normalize_public_error(reason, metadata) when is_atom(reason),
    do: new(reason, upstream_message(reason), Map.put(metadata, :reason, reason))

  def normalize_public_error(reason, metadata)
      when is_tuple(reason) and tuple_size(reason) > 0 and is_atom(elem(reason, 0)),
      do: new(elem(reason, 0), "Pool request failed", Map.put(metadata, :reason, reason))

  def normalize_public_error(reason, metadata) do
    if PythonException.python_exception?(reason) do
      message = "#{reason.python_type}: #{reason.message}"
      from_python_exception(:worker_error, message, reason, metadata)
    else
      new(:request_failed, "Request failed", Map.put(metadata, :reason, reason))
    end
  end

  @doc false
  # The error for an exception raised by the worker's code, `exception` being its struct (see
  # "Errors raised by the worker's code" above).
  @spec from_python_exception(reason(), String.t(), PythonException.t(), map()) :: t()
  def from_python_exception(reason, message, exception, details) do
    details = Map.merge(details, %{reason: exception, exception_type: exception.python_type})
    %{new(reason, message, details) | python_traceback: exception.python_traceback}
  end

  defp upstream_message(:queue_timeout), do: "Request timed out in queue"
  defp upstream_message(:worker_timeout), do: "Worker execution timed out"
  defp upstream_message(:pool_not_found), do: "Pool not found"
  defp upstream_message(:pool_not_initialized), do: "Pool not initialized"
  defp upstream_message(:pool_saturated), do: "Pool is saturated"
  defp upstream_message(:worker_busy), do: "Preferred worker is busy"
  defp upstream_message(:session_worker_unavailable), do: "Session worker unavailable"
  defp upstream_message(:no_workers_available), do: "No workers available"
  defp upstream_message(_reason), do: "Pool request failed"

  # Upstream's constructors: the reason is `details.reason` when it is an atom.
  defp construct(category, default_reason, message, details) do
    reason =
      case details do
        %{reason: reason} when is_atom(reason) and reason != nil -> reason
        _ -> default_reason
      end

    build(reason, category, message, details)
  end

  defp build(reason, category, message, details) do
    %__MODULE__{
      reason: reason,
      category: category,
      message: message,
      details: Map.put_new(details, :reason, reason)
    }
  end

  # As upstream: `"#{error}"` reads "[category] message", then the details and the traceback.
  defimpl String.Chars do
    def to_string(%Snakepit.Error{} = error) do
      details = if map_size(error.details) > 0, do: "\nDetails: #{inspect(error.details)}"
      grpc = if error.grpc_status, do: "\ngRPC Status: #{error.grpc_status}"

      traceback =
        if error.python_traceback, do: "\n\nPython Traceback:\n#{error.python_traceback}"

      "[#{error.category}] #{error.message}#{details}#{grpc}#{traceback}"
    end
  end
end
