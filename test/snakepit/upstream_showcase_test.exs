defmodule Snakepit.UpstreamShowcaseTest do
  @moduledoc """
  Upstream Snakepit's own showcase adapter (v0.4.3 and v0.13.0), unchanged, served by real
  Python workers: each of its documented tools called with the arguments upstream's examples
  (`examples/snakepit_showcase`) give it.

  It needs what CI does not have, so it is skipped, saying why, unless both exist:

    * a Python virtualenv with the showcase's dependencies (numpy, psutil):
      `$SNAKEPIT_UPSTREAM_VENV`, default `/tmp/upstream_venv`;
    * a git mirror of upstream (`nshkrdotcom/snakepit`) holding both tags:
      `$SNAKEPIT_UPSTREAM_MIRROR`, default `/work/.mirror/nshkrdotcom+snakepit/repo`.

  The showcase package is extracted from the mirror into the test's tmp dir as the top-level
  package `showcase` (upstream ships it inside its own `snakepit_bridge`, whose place our bridge
  takes); its code is not changed. Run with `mix test --only upstream`.

  The pool has two workers and strict session affinity: upstream's session tools keep state in
  the worker process, and every call of the test's session must reach the worker that holds
  it (`Snakepit.execute_in_session/4`'s `:strict_queue`). Streaming tools are called
  without streaming (`execute_stream/4` is not there yet): their chunks' data come back as a list.
  """
  use ExUnit.Case, async: true

  alias Snakepit.{Error, Serialization, TestPool}

  @moduletag :upstream
  @moduletag :tmp_dir

  @venv System.get_env("SNAKEPIT_UPSTREAM_VENV", "/tmp/upstream_venv")
  @mirror System.get_env("SNAKEPIT_UPSTREAM_MIRROR", "/work/.mirror/nshkrdotcom+snakepit/repo")
  @python Path.join(@venv, "bin/python")
  @showcase "priv/python/snakepit_bridge/adapters/showcase"

  missing =
    cond do
      not File.exists?(@python) ->
        "no Python virtualenv with numpy and psutil at #{@venv} ($SNAKEPIT_UPSTREAM_VENV)"

      not File.dir?(@mirror) ->
        "no git mirror of upstream Snakepit at #{@mirror} ($SNAKEPIT_UPSTREAM_MIRROR)"

      System.find_executable("git") == nil ->
        "no git to read upstream's mirror"

      true ->
        nil
    end

  if missing do
    # ExUnit does not print skip reasons: say it once, when this file is loaded.
    IO.puts("Snakepit.UpstreamShowcaseTest skipped: " <> missing)
    @moduletag skip: "upstream's showcase not run: " <> missing
  end

  # Upstream's own bugs, the same under upstream: the adapter's tool asks a handler for a tool
  # it does not have (with the arguments the adapter's tool takes).
  @upstream_key_errors [
    {"ml_analyze_text", %{text: "t"}},
    {"process_binary", %{data: "abc", operation: "checksum"}},
    {"concurrent_demo", %{task_count: 2}}
  ]

  defp start_showcase!(tag, tmp_dir) do
    tar = Path.join(tmp_dir, "showcase.tar")

    {_, 0} =
      System.cmd("git", ["--git-dir", @mirror, "archive", "--output", tar, tag, @showcase],
        stderr_to_stdout: true
      )

    :ok = :erl_tar.extract(String.to_charlist(tar), cwd: String.to_charlist(tmp_dir))
    :ok = File.rename(Path.join(tmp_dir, @showcase), Path.join(tmp_dir, "showcase"))

    TestPool.start!(
      size: 2,
      affinity: :strict_queue,
      python_executable: @python,
      adapter_args: ["--adapter", "showcase.ShowcaseAdapter"],
      env: [{"PYTHONPATH", tmp_dir}]
    )
  end

  defp call(pool, command, args \\ %{}),
    do: Snakepit.execute(command, args, pool: pool, session_id: "showcase-session")

  defp assert_common_tools(pool) do
    # The adapter's own ping (routed by its execute_tool), not the bridge's.
    assert {:ok, %{"message" => "Hello from Elixir!", "timestamp" => _}} =
             call(pool, "ping", %{message: "Hello from Elixir!"})

    # The session's worker, which every later call reaches.
    %{os_pid: os_pid} = Snakepit.Pool.session_info(pool, "showcase-session")

    assert {:ok, %{"message" => "pong"}} = call(pool, "ping")

    nested = %{"message" => "hi", "number" => 42, "list" => [1, 2, 3], "nested" => %{"k" => "v"}}
    assert {:ok, %{"echoed" => ^nested}} = call(pool, "echo", nested)
    assert {:ok, 3} = call(pool, "add", %{a: 1, b: 2})
    assert {:ok, 3.5} = call(pool, "basic_add", %{a: 2.5, b: 1})
    assert {:ok, %{"echoed" => %{"message" => "x"}}} = call(pool, "basic_echo", %{message: "x"})

    assert {:ok, %{"result" => "olleH", "success" => true}} =
             call(pool, "process_text", %{text: "Hello", operation: "reverse"})

    assert {:ok, %{"adapter_name" => "ShowcaseAdapter"}} = call(pool, "adapter_info")

    assert {:ok, %{"adapter" => %{"session_id" => "showcase-session"}, "system" => system}} =
             call(pool, "get_stats")

    assert system["pid"] == os_pid

    for {type, python} <- [{"value", "ValueError"}, {"runtime", "RuntimeError"}] do
      assert {:error, %Error{category: :python_error, details: %{type: ^python}}} =
               call(pool, "error_demo", %{error_type: type})
    end

    for {tool, args} <- @upstream_key_errors do
      assert {:error, %Error{details: %{type: "KeyError"}}} = call(pool, tool, args)
    end

    # No channel back into the BEAM: no Elixir tools are offered.
    assert {:ok, %{"available_tools" => [], "error" => "Elixir tool parse_json not found"}} =
             call(pool, "call_elixir_demo", %{tool_name: "parse_json"})

    assert_session_tools(pool, os_pid)
    assert_binary_and_concurrent_tools(pool)
    assert_ml_tools(pool)

    # Streaming tools, without streaming: the data of each StreamChunk they yield.
    assert {:ok, fibonacci} = call(pool, "stream_fibonacci", %{count: 5})
    assert Enum.map(fibonacci, & &1["value"]) == [0, 1, 1, 2, 3]

    assert {:ok, [%{"rows_in_chunk" => 2, "total_rows" => 2, "data_sample" => sample}]} =
             call(pool, "generate_dataset", %{rows: 2, chunk_size: 10})

    assert length(sample) == 10
  end

  defp assert_session_tools(pool, os_pid) do
    assert {:ok, %{"session_id" => "showcase-session", "worker_pid" => ^os_pid}} =
             call(pool, "init_session", %{user_id: 123, config: %{"model" => "gpt-4"}})

    assert {:ok, %{"value" => 0}} = call(pool, "set_counter", %{value: 0})
    assert {:ok, %{"value" => 1}} = call(pool, "increment_counter")
    assert {:ok, %{"value" => 2}} = call(pool, "increment_counter")
    assert {:ok, %{"value" => 2}} = call(pool, "get_counter")

    assert {:ok, %{"call_number" => 1, "session_id" => "showcase-session"}} =
             call(pool, "get_worker_info", %{call_number: 1})

    # The handler's `cleanup` tool (not the adapter's cleanup hook) ends the session.
    assert {:ok, %{"command_count" => 5}} = call(pool, "cleanup")
  end

  defp assert_binary_and_concurrent_tools(pool) do
    assert {:ok, %{"shape" => [10, 10], "encoding" => "json", "elements" => 100}} =
             call(pool, "create_tensor", %{name: "small", shape: [10, 10], size_bytes: 800})

    assert {:ok, %{"encoding" => "binary", "elements" => 10_000}} =
             call(pool, "create_tensor", %{name: "large", shape: [100, 100], size_bytes: 80_000})

    assert {:ok, %{"results" => [_, _]}} =
             call(pool, "benchmark_encoding", %{start_kb: 1, end_kb: 11, step_kb: 10})

    assert {:ok, %{"dimensions" => 64, "norm" => norm}} =
             call(pool, "create_embedding", %{text: "hello", dimensions: 64})

    assert_in_delta norm, 1.0, 1.0e-9

    assert {:ok, %{"task_id" => "t1"}} =
             call(pool, "cpu_bound_task", %{task_id: "t1", duration_ms: 1})

    assert {:ok, %{"task_number" => 1, "slept_ms" => 0}} =
             call(pool, "sleep_task", %{duration_ms: 0, task_number: 1})

    assert {:ok, %{"iteration" => 3, "result" => 6}} =
             call(pool, "lightweight_task", %{iteration: 3})

    assert {:ok, %{"worker_pid" => _, "memory_mb" => _}} = call(pool, "get_pool_stats")
  end

  defp assert_ml_tools(pool) do
    assert {:ok, %{"dataset_name" => "iris", "train_samples" => 120}} =
             call(pool, "load_sample_data", %{dataset: "iris", split: 0.8})

    assert {:ok, %{"normalized" => true, "categorical_encoded" => true}} =
             call(pool, "preprocess_data", %{
               normalize: true,
               handle_missing: "mean",
               encode_categorical: true
             })

    assert {:ok, %{"original_features" => 4}} =
             call(pool, "generate_features", %{
               method: "polynomial",
               degree: 2,
               interaction_only: false
             })

    assert {:ok, %{"selected_features" => [[_, _], [_, _]]}} =
             call(pool, "select_features", %{method: "k_best", k_best: 2})

    assert {:ok, training} =
             call(pool, "train_model", %{algorithm: "random_forest", max_depth: 10})

    assert %{"type" => "completed", "final_accuracy" => _} = List.last(training)
    assert length(training) == 11

    assert {:ok, %{"fold_accuracies" => [_, _, _]}} = call(pool, "cross_validate", %{cv_folds: 3})

    assert {:ok, %{"prediction" => prediction}} =
             call(pool, "predict_single", %{features: %{"sepal_length" => 5.1}})

    assert prediction in ~w(setosa versicolor virginica)

    assert {:ok, %{"embeddings_shape" => [4, 8], "predictions_shape" => [4]}} =
             call(pool, "predict_batch_with_embeddings", %{
               batch_size: 4,
               include_embeddings: true,
               embedding_dim: 8
             })
  end

  test "v0.13.0's showcase answers its documented tools", %{tmp_dir: tmp_dir} do
    pool = start_showcase!("v0.13.0", tmp_dir)
    assert_common_tools(pool)

    assert {:ok, [%{"message" => "Chunk 1/2"}, %{"message" => "Chunk 2/2"}]} =
             call(pool, "stream_data", %{count: 2, delay: 0})

    assert {:ok, [%{"step" => 1}, %{"step" => 2, "progress" => 100.0}]} =
             call(pool, "stream_progress", %{steps: 2, delay_ms: 0})

    assert {:ok, %{"telemetry_enabled" => false, "operation" => "compute"}} =
             call(pool, "telemetry_demo", %{delay_ms: 0})

    assert {:ok, demo} = call(pool, "serialization_demo", %{demo_type: "all"})
    assert {:ok, _} = Date.from_iso8601(demo["datetime_demo"]["date_today"])
    assert {:ok, _} = NaiveDateTime.from_iso8601(demo["datetime_demo"]["datetime_now"])
    assert Serialization.unserializable?(demo["custom_class_demo"]["custom_object"])

    assert demo["convertible_demo"] == %{
             "api_response" => %{"code" => 200, "message" => "OK"},
             "pydantic_like" => %{"field1" => "value1", "field2" => "value2"}
           }

    assert [1, "two", _, marker, %{"nested" => "dict"}, %{"code" => 201}] =
             demo["mixed_list_demo"]

    assert {:ok, %{type: "showcase.handlers.basic_ops.CustomResponse"}} =
             Serialization.unserializable_info(marker)

    complex = demo["complex_demo"]
    assert Serialization.unserializable?(complex["client"])
    assert complex["result"] == %{"value" => "computed result", "score" => 0.95}
    assert %{"data" => %{"final" => "output"}} = complex["latest_response"]
  end

  test "v0.4.3's showcase answers its documented tools", %{tmp_dir: tmp_dir} do
    pool = start_showcase!("v0.4.3", tmp_dir)
    assert_common_tools(pool)

    assert {:ok, [%{"step" => 1}, %{"step" => 2, "progress" => 100.0}]} =
             call(pool, "stream_progress", %{steps: 2})

    # Upstream's bugs again: v0.4.3's adapter exposes tools its handlers lack.
    for {tool, args} <- [{"stream_data", %{count: 2}}, {"variable_demo", %{name: "n", value: 1}}] do
      assert {:error, %Error{details: %{type: "KeyError"}}} = call(pool, tool, args)
    end

    # v0.4.3's variables, which its handler keeps in the worker.
    assert {:ok, %{"variable_id" => "showcase-session_temperature"}} =
             call(pool, "register_variable", %{
               name: "temperature",
               type: "float",
               initial_value: 0.7,
               constraints: %{min: 0.0, max: 1.0}
             })

    assert {:ok, %{"value" => 0.7}} = call(pool, "get_variable", %{name: "temperature"})

    assert {:ok, %{"success" => true}} =
             call(pool, "set_variable", %{name: "temperature", value: 0.9})

    assert {:ok, %{"previous_value" => 0.9, "value" => 0.5}} =
             call(pool, "set_variable_with_history", %{
               name: "temperature",
               value: 0.5,
               metadata: %{"reason" => "lower"}
             })

    assert {:ok, %{"count" => 1, "variables" => %{"temperature" => 0.5}}} =
             call(pool, "get_variables", %{names: ["temperature", "max_tokens"]})

    assert {:ok, %{"updated_count" => 2, "failed_count" => 0}} =
             call(pool, "set_variables", %{updates: %{"temperature" => 0.8, "max_tokens" => 150}})
  end
end
