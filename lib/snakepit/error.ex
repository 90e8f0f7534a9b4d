defmodule Snakepit.Error do
  @moduledoc """
  The error every Snakepit call returns as `{:error, %Snakepit.Error{}}`.

    * `:reason` - an atom to match on (upstream Snakepit's names), see below
    * `:category` - `:validation`, `:pool`, `:worker` or `:execution`
    * `:message` - readable text
    * `:details` - a map; for errors raised by the worker's code it holds `"type"`, `"message"`
      and `"traceback"` (the Python exception's class name, text and formatted traceback)

  Reasons:

  | reason | category | meaning |
  |---|---|---|
  | `:invalid_command` | validation | the command is not a non-empty printable string |
  | `:invalid_args` | validation | args are not a map, or hold a term that cannot become JSON (the message says where) |
  | `:args_too_large` | validation | the encoded request exceeds `:max_frame_size` |
  | `:invalid_option` | validation | a call option is invalid |
  | `:pool_saturated` | pool | `:max_queue_size` requests are already waiting |
  | `:queue_timeout` | pool | no worker became free within `:queue_timeout`; the request never ran |
  | `:pool_not_initialized` | pool | the pool is not running, or none of its workers could start |
  | `:pool_shutdown` | pool | the pool stopped before the request finished |
  | `:circuit_open` | pool | no worker runs and the last `:max_start_failures` starts failed |
  | `:timeout` | worker | the command ran longer than its `:timeout` |
  | `:worker_crashed` | worker | the worker process died while running the request |
  | `:protocol_error` | worker | the worker broke the wire protocol and was replaced |
  | `:invalid_result` | worker | the result cannot become a term (nested deeper than args may nest, 128 levels; a lone surrogate in a string); the worker stays |
  | `:worker_error` | execution | the command raised; see `details` |
  | `:unknown_command` | execution | the worker has no such command |
  """

  defexception [:reason, :category, :message, details: %{}]

  @type reason :: atom()
  @type t :: %__MODULE__{
          reason: reason(),
          category: :validation | :pool | :worker | :execution,
          message: String.t(),
          details: map()
        }

  @categories %{
    invalid_command: :validation,
    invalid_args: :validation,
    args_too_large: :validation,
    invalid_option: :validation,
    pool_saturated: :pool,
    queue_timeout: :pool,
    pool_not_initialized: :pool,
    pool_shutdown: :pool,
    circuit_open: :pool,
    timeout: :worker,
    worker_crashed: :worker,
    protocol_error: :worker,
    invalid_result: :worker,
    worker_error: :execution,
    unknown_command: :execution
  }

  @doc "Builds an error for `reason`."
  @spec new(reason(), String.t(), map()) :: t()
  def new(reason, message, details \\ %{}) when is_atom(reason) and is_binary(message) do
    %__MODULE__{
      reason: reason,
      category: Map.get(@categories, reason, :pool),
      message: message,
      details: details
    }
  end

  @impl true
  def message(%__MODULE__{reason: reason, message: message}), do: "#{reason}: #{message}"
end
