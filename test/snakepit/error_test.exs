defmodule Snakepit.ErrorTest do
  # Upstream Snakepit v0.13's error contract, kept alongside snakepit_rs's `reason`.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}
  alias Snakepit.Native.Gate

  # What Snakepit.execute/3 (and execute_stream/4) can return, with upstream's category for each.
  @reasons %{
    invalid_command: :validation,
    invalid_args: :validation,
    args_too_large: :validation,
    invalid_option: :validation,
    invalid_session_id: :validation,
    unsupported_call: :validation,
    pool_saturated: :pool,
    pool_not_initialized: :pool,
    pool_not_found: :pool,
    pool_shutdown: :pool,
    circuit_open: :pool,
    worker_busy: :pool,
    session_worker_unavailable: :pool,
    queue_timeout: :timeout,
    timeout: :timeout,
    worker_crashed: :worker,
    protocol_error: :worker,
    invalid_result: :worker,
    worker_error: :python_error,
    unknown_command: :python_error,
    streaming_not_supported: :validation,
    callback_exception: :pool
  }

  describe "categories" do
    test "each reason has upstream's category, and details.reason" do
      for {reason, category} <- @reasons do
        assert %Error{reason: ^reason, category: ^category, details: %{reason: ^reason}} =
                 Error.new(reason, "text")
      end
    end

    test "the module doc lists every reason with its category" do
      {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(Error)

      rows =
        for [_, reason, category] <- Regex.scan(~r/^\| `:(\w+)` \| (\w+) \|/m, doc),
            into: %{},
            do: {String.to_atom(reason), String.to_atom(category)}

      assert rows == @reasons
    end

    test "upstream's category list" do
      categories = @reasons |> Map.values() |> Enum.uniq() |> Enum.sort()
      assert categories == [:pool, :python_error, :timeout, :validation, :worker]

      assert %Error{category: :grpc_error, grpc_status: :unavailable} =
               Error.grpc_error(:unavailable, "x")

      assert %Error{python_traceback: nil, grpc_status: nil} = Error.new(:timeout, "x")
    end
  end

  describe "errors from the native pool" do
    test "details get atom keys and keep the reason" do
      native = {:worker_crashed, "worker w1 exited", %{"worker_id" => "w1", "exit" => "signal 9"}}

      assert %Error{category: :worker, details: details} = Gate.error(native)
      assert details == %{reason: :worker_crashed, worker_id: "w1", exit: "signal 9"}

      assert %Error{details: %{reason: :queue_timeout, waited_ms: 5}} =
               Gate.error({:queue_timeout, "waited", %{"waited_ms" => 5}})
    end

    test "a real call's errors carry upstream's details" do
      pool = TestPool.start_test_workers!(size: 1)

      assert {:error, %Error{reason: :worker_crashed, category: :worker, details: details}} =
               Snakepit.execute("crash", %{status: 3}, pool: pool)

      assert %{reason: :worker_crashed, command: "crash", pool: ^pool, pool_name: ^pool} = details
      assert is_binary(details.worker_id) and is_binary(details.exit)

      assert {:error, %Error{reason: :timeout, category: :timeout, details: details}} =
               Snakepit.execute("hang", %{}, pool: pool, timeout: 20)

      assert %{reason: :timeout, timeout_ms: 20, command: "hang"} = details
    end
  end

  describe "errors raised by the worker's code" do
    test "arrive as %Snakepit.Error{category: :python_error} holding upstream's exception struct" do
      pool = TestPool.start!(size: 1)

      assert {:error, %Error{} = error} =
               Snakepit.execute("raise_error", %{message: "boom"}, pool: pool)

      assert %Error{reason: :worker_error, category: :python_error, message: "ValueError: boom"} =
               error

      assert error.python_traceback =~ "raise_error"
      assert error.details.exception_type == "ValueError"

      assert %Snakepit.Error.ValueError{
               message: "boom",
               python_type: "ValueError",
               python_traceback: traceback,
               context: %{},
               stacktrace: []
             } = error.details.reason

      assert traceback == error.python_traceback
      assert Exception.message(error.details.reason) == "boom"
    end

    test "each mapped class has its struct; any other is a PythonException" do
      pool = TestPool.start_test_workers!(size: 1)

      for {type, module} <- [
            {"ValueError", Snakepit.Error.ValueError},
            {"KeyError", Snakepit.Error.KeyError},
            {"IndexError", Snakepit.Error.IndexError},
            {"TypeError", Snakepit.Error.TypeError},
            {"AttributeError", Snakepit.Error.AttributeError},
            {"ImportError", Snakepit.Error.ImportError},
            {"RuntimeError", Snakepit.Error.RuntimeError},
            {"NotImplementedError", Snakepit.Error.NotImplementedError},
            {"FileNotFoundError", Snakepit.Error.FileNotFoundError},
            {"PermissionError", Snakepit.Error.PermissionError},
            {"ZeroDivisionError", Snakepit.Error.ZeroDivisionError},
            {"CustomError", Snakepit.Error.PythonException}
          ] do
        assert {:error, %Error{reason: :worker_error, details: %{reason: exception}} = error} =
                 Snakepit.execute("fail", %{type: type, message: "m"}, pool: pool)

        assert %^module{message: "m", python_type: ^type} = exception
        assert error.message == "#{type}: m"
        # The test worker sends no traceback.
        assert error.python_traceback == nil
      end

      assert {:error, %Error{reason: :unknown_command, category: :python_error} = error} =
               Snakepit.execute("no_such_command", %{}, pool: pool)

      assert %Snakepit.Error.PythonException{python_type: "UnknownCommand"} = error.details.reason
    end

    test "the pattern upstream's examples/structured_errors.exs uses compiles and matches" do
      classify = fn
        {:error, %Snakepit.Error.ValueError{}} ->
          :mapped

        {:error, %Snakepit.Error.PythonException{}} ->
          :unmapped

        {:error, %Snakepit.Error{category: :python_error, details: %{reason: %{python_type: t}}}} ->
          t

        {:error, %Snakepit.Error{}} ->
          :snakepit
      end

      error =
        Gate.error(
          {:worker_error, "RuntimeError: x", %{"type" => "RuntimeError", "message" => "x"}}
        )

      assert classify.({:error, error}) == "RuntimeError"
      assert classify.({:error, Error.new(:queue_timeout, "x")}) == :snakepit
    end
  end

  describe "upstream's functions" do
    test "normalize_public_result/2 as v0.13 does" do
      assert :ok = Error.normalize_public_result(:ok)
      assert {:ok, 1} = Error.normalize_public_result({:ok, 1})
      mine = Error.new(:pool_saturated, "full")
      assert {:error, ^mine} = Error.normalize_public_result({:error, mine}, %{command: "x"})

      assert {:error, %Error{category: :pool, details: details}} =
               Error.normalize_public_result({:error, :pool_not_found}, %{pool_name: :alpha})

      assert details == %{reason: :pool_not_found, pool_name: :alpha}

      assert {:error, %Error{reason: :pool_not_found, category: :pool, details: details}} =
               Error.normalize_public_result({:error, {:pool_not_found, :alpha}}, %{
                 command: "ping"
               })

      assert details == %{reason: :pool_not_found, pool_name: :alpha, command: "ping"}

      assert {:error,
              %Error{reason: :something, category: :pool, details: %{reason: {:something, 1}}}} =
               Error.normalize_public_result({:error, {:something, 1}})

      exception = Snakepit.Error.PythonException.new("KeyError", "k", "tb")

      assert {:error,
              %Error{reason: :worker_error, category: :python_error, python_traceback: "tb"}} =
               Error.normalize_public_result({:error, exception})
    end

    test "constructors" do
      assert %Error{reason: :worker, category: :worker, details: %{worker_id: "w1"}} =
               Error.worker_error("Worker not found", %{worker_id: "w1"})

      assert %Error{reason: :timeout, category: :timeout} =
               Error.timeout_error("t", %{timeout_ms: 5})

      assert %Error{reason: :pool_not_found, category: :pool} =
               Error.pool_error("p", %{reason: :pool_not_found})

      assert %Error{reason: :validation, category: :validation} = Error.validation_error("v")

      assert %Error{
               reason: :worker_error,
               category: :python_error,
               message: "ValueError: Invalid input",
               python_traceback: "Traceback...",
               details: %{exception_type: "ValueError"}
             } = Error.python_error("ValueError", "Invalid input", "Traceback...")
    end

    test "to_string/1 and raise" do
      error = Error.python_error("ValueError", "bad", "Traceback line")
      text = to_string(error)
      assert text =~ "[python_error] ValueError: bad"
      assert text =~ "Python Traceback:\nTraceback line"
      assert_raise Error, "worker_error: ValueError: bad", fn -> raise error end
    end
  end
end
