defmodule Snakepit.RetryPolicyTest do
  use ExUnit.Case, async: true

  alias Snakepit.RetryPolicy

  test "defaults are upstream's" do
    assert %RetryPolicy{
             max_attempts: 3,
             backoff_ms: [100, 200, 400, 800, 1600],
             max_backoff_ms: 30_000,
             jitter: false,
             retriable_errors: [:timeout, :unavailable, :connection_refused, :worker_crash]
           } = RetryPolicy.new()
  end

  test "attempts are counted from 1, the first one included" do
    policy = RetryPolicy.new(max_attempts: 3)
    assert RetryPolicy.should_retry?(policy, 1)
    assert RetryPolicy.should_retry?(policy, 2)
    refute RetryPolicy.should_retry?(policy, 3)
  end

  test "backoff: one delay per retry, the last repeats, capped by max_backoff_ms" do
    policy = RetryPolicy.new(backoff_ms: [10, 20, 5_000], max_backoff_ms: 1_000)

    assert Enum.map(1..5, &RetryPolicy.backoff_for_attempt(policy, &1)) == [
             10,
             20,
             1_000,
             1_000,
             1_000
           ]

    assert RetryPolicy.backoff_for_attempt(RetryPolicy.new(backoff_ms: []), 1) == 100
  end

  test "jitter stays within jitter_factor of the delay" do
    policy = RetryPolicy.new(backoff_ms: [1_000], jitter: true, jitter_factor: 0.1)

    for _ <- 1..200 do
      delay = RetryPolicy.backoff_for_attempt(policy, 1)
      assert delay in 900..1_100
    end
  end

  test "only {:error, atom} in retriable_errors is retried, unless retriable_errors is :all" do
    policy = RetryPolicy.new(retriable_errors: [:timeout])
    assert RetryPolicy.retry_for_error?(policy, {:error, :timeout})
    refute RetryPolicy.retry_for_error?(policy, {:error, :other})
    refute RetryPolicy.retry_for_error?(policy, :timeout)

    refute RetryPolicy.retry_for_error?(
             policy,
             {:error, Snakepit.Error.new(:timeout, "took too long")}
           )

    assert RetryPolicy.retry_for_error?(RetryPolicy.new(retriable_errors: :all), :anything)
  end
end
