defmodule Snakepit.ScriptOptionsTest do
  use ExUnit.Case, async: true

  alias Snakepit.Script.Options

  defp exit_mode(opts, env), do: Options.resolve!(opts, env, false).exit_mode

  test "defaults are upstream v0.13's" do
    assert %{
             exit_mode: :none,
             stop_mode: :if_started,
             timeout: 15_000,
             shutdown_timeout: 15_000,
             cleanup_timeout: 5_000,
             restart: :auto,
             await_pool: false,
             pool_options: [],
             warnings: []
           } = Options.resolve!([], %{}, false)
  end

  test "await_pool follows pooling_enabled, and :pool_options asks for a pool" do
    assert Options.resolve!([], %{}, true).await_pool
    assert Options.resolve!([pool_options: [size: 1]], %{}, false).await_pool
    refute Options.resolve!([await_pool: false, pool_options: [size: 1]], %{}, true).await_pool
  end

  test "exit mode: the option, then halt: true, then SNAKEPIT_SCRIPT_EXIT, then SNAKEPIT_SCRIPT_HALT" do
    env = %{"SNAKEPIT_SCRIPT_EXIT" => "stop", "SNAKEPIT_SCRIPT_HALT" => "yes"}

    assert exit_mode([exit_mode: :none, halt: true], env) == :none
    assert exit_mode([halt: true], env) == :halt
    assert exit_mode([halt: false], env) == :stop
    assert exit_mode([], env) == :stop
    assert exit_mode([], %{"SNAKEPIT_SCRIPT_HALT" => " On "}) == :halt
    assert exit_mode([], %{"SNAKEPIT_SCRIPT_HALT" => "0"}) == :none
  end

  test "SNAKEPIT_SCRIPT_EXIT ignores case and blanks; blank means unset" do
    assert exit_mode([], %{"SNAKEPIT_SCRIPT_EXIT" => "  AuTo "}) == :auto

    assert exit_mode([], %{"SNAKEPIT_SCRIPT_EXIT" => "   ", "SNAKEPIT_SCRIPT_HALT" => "1"}) ==
             :halt
  end

  test "an invalid SNAKEPIT_SCRIPT_EXIT is ignored with a warning naming it and the fallback" do
    env = %{"SNAKEPIT_SCRIPT_EXIT" => "bogus", "SNAKEPIT_SCRIPT_HALT" => "true"}
    assert %{exit_mode: :halt, warnings: [warning]} = Options.resolve!([], env, false)
    assert warning =~ "SNAKEPIT_SCRIPT_EXIT"
    assert warning =~ "bogus"
    assert warning =~ "halt"
  end

  test ":auto stops the VM only when the script owns Snakepit and the VM would not halt" do
    assert Options.effective_exit_mode(:auto, true, true) == :stop
    assert Options.effective_exit_mode(:auto, true, false) == :none
    assert Options.effective_exit_mode(:auto, false, true) == :none
    assert Options.effective_exit_mode(:halt, false, false) == :halt
  end

  test "invalid values raise ArgumentError naming the option and the value" do
    for {key, value} <- [
          exit_mode: :bogus,
          stop_mode: :sometimes,
          restart: :maybe,
          await_pool: "yes",
          timeout: -1,
          cleanup_timeout: :soon,
          shutdown_timeout: 1.5,
          pool_options: %{size: 1}
        ] do
      error = assert_raise ArgumentError, fn -> Options.resolve!([{key, value}], %{}, false) end
      assert error.message =~ inspect(key)
      assert error.message =~ inspect(value)
    end
  end

  test "timeout may be :infinity" do
    assert %{timeout: :infinity} = Options.resolve!([timeout: :infinity], %{}, false)
  end

  test "unknown keys are ignored, as upstream does" do
    assert %{exit_mode: :none} = Options.resolve!([await_timeout: 5_000], %{}, false)
  end
end
