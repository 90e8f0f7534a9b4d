defmodule Snakepit.RetryPolicy do
  @moduledoc """
  How often and after how long to retry, as upstream Snakepit's (v0.13); `Snakepit.Executor`
  applies it.

      policy = Snakepit.RetryPolicy.new(max_attempts: 4, backoff_ms: [100, 200, 400])
      Snakepit.RetryPolicy.should_retry?(policy, 1)                         # => true
      Snakepit.RetryPolicy.backoff_for_attempt(policy, 2)                   # => 200
      Snakepit.RetryPolicy.retry_for_error?(policy, {:error, :timeout})     # => true

  An error is retriable when it is `{:error, reason}` with `reason` an atom in
  `:retriable_errors` (or when that is `:all`). A `{:error, %Snakepit.Error{}}` is not, as
  upstream: match its `reason` yourself if you want to retry it.
  """

  @typedoc "A retry policy."
  @type t :: %__MODULE__{
          max_attempts: pos_integer(),
          backoff_ms: [non_neg_integer()],
          base_backoff_ms: non_neg_integer(),
          backoff_multiplier: float(),
          max_backoff_ms: non_neg_integer(),
          jitter: boolean(),
          jitter_factor: float(),
          retriable_errors: [atom()] | :all
        }

  defstruct max_attempts: 3,
            backoff_ms: [100, 200, 400, 800, 1600],
            base_backoff_ms: 100,
            backoff_multiplier: 2.0,
            max_backoff_ms: 30_000,
            jitter: false,
            jitter_factor: 0.25,
            retriable_errors: [:timeout, :unavailable, :connection_refused, :worker_crash]

  @doc """
  A policy from options named as the struct's fields (unknown keys are ignored, as upstream):
  `:max_attempts` (3, the first attempt included), `:backoff_ms` (the delay before each retry;
  the last one repeats), `:max_backoff_ms` (a cap), `:jitter` and `:jitter_factor` (a random
  ±25% by default), `:retriable_errors`. `:base_backoff_ms` is the delay when `:backoff_ms` is
  empty; `:backoff_multiplier` is kept for upstream's sake and unused, as there.
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []), do: struct(__MODULE__, opts)

  @doc "Whether another attempt may follow attempt number `attempt` (counted from 1)."
  @spec should_retry?(t(), non_neg_integer()) :: boolean()
  def should_retry?(%__MODULE__{max_attempts: max}, attempt), do: attempt < max

  @doc "Whether `result` is an error this policy retries."
  @spec retry_for_error?(t(), term()) :: boolean()
  def retry_for_error?(%__MODULE__{retriable_errors: :all}, _result), do: true

  def retry_for_error?(%__MODULE__{retriable_errors: errors}, {:error, reason})
      when is_atom(reason),
      do: reason in errors

  def retry_for_error?(%__MODULE__{}, _result), do: false

  @doc "The delay in ms before the retry that follows attempt number `attempt`."
  @spec backoff_for_attempt(t(), pos_integer()) :: non_neg_integer()
  def backoff_for_attempt(%__MODULE__{} = policy, attempt) do
    delay =
      policy.backoff_ms
      |> Enum.at(attempt - 1, List.last(policy.backoff_ms) || policy.base_backoff_ms)
      |> min(policy.max_backoff_ms)

    if policy.jitter, do: jitter(delay, policy.jitter_factor), else: delay
  end

  defp jitter(delay, factor) do
    spread = trunc(delay * factor)
    max(delay + Enum.random(-spread..spread), 0)
  end
end
