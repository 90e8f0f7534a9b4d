defmodule Snakepit.CodecExactnessTest do
  # What crosses to a real Python worker and back, end to end: integers of any size, nesting up
  # to the limit both ways (codec::MAX_DEPTH), and map keys that would collide as JSON strings.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @max_depth 128

  # An adapter whose results nest as deep as asked, which `echo` of args cannot do: args are a
  # map, so an echoed result is never deeper than the args.
  @deep_adapter """
  from snakepit_bridge import BaseAdapter, tool


  class DeepAdapter(BaseAdapter):
      @tool(description="1 inside `levels` lists")
      def nest(self, levels):
          value = 1
          for _ in range(levels):
              value = [value]
          return value
  """

  defp deep(levels), do: Enum.reduce(1..levels//1, 1, fn _, acc -> [acc] end)

  describe "echo through a Python worker" do
    setup do
      %{pool: TestPool.start!(size: 1)}
    end

    test "integers of any size come back exact", %{pool: pool} do
      # Regression: 2**70 came back as the float 1.1805916207174113e21, and args beyond 64 bits
      # were refused.
      ints = [2 ** 70, -(2 ** 100), 2 ** 64, -(2 ** 63) - 1, 2 ** 1000, 2 ** 63, -(2 ** 63)]

      assert {:ok, %{"ints" => ^ints, "keys" => keys}} =
               Snakepit.execute("echo", %{ints: ints, keys: %{(2 ** 70) => 1}}, pool: pool)

      assert keys == %{"1180591620717411303424" => 1}

      assert {:ok, %{"floats" => floats}} =
               Snakepit.execute("echo", %{floats: [1.0, 1.0e3, 1.0e21]}, pool: pool)

      assert Enum.all?(floats, &is_float/1) and floats == [1.0, 1.0e3, 1.0e21]
    end

    test "a value nested to the limit comes back", %{pool: pool} do
      # The args map is the outermost level: `v` adds 127. Regression: the reply failed with
      # :protocol_error, a result could nest one level less than args.
      args = %{"v" => deep(@max_depth - 1)}
      assert {:ok, ^args} = Snakepit.execute("echo", args, pool: pool)

      assert {:error, %Error{reason: :invalid_args, message: message}} =
               Snakepit.execute("echo", %{"v" => deep(@max_depth)}, pool: pool)

      assert message =~ "nested deeper than 128 levels"
    end

    test "map keys that collide as JSON keys are refused before reaching the worker",
         %{pool: pool} do
      assert {:error, %Error{reason: :invalid_args, category: :validation} = error} =
               Snakepit.execute("echo", %{1 => "a", "1" => "b"}, pool: pool)

      assert error.message == ~s(keys 1 and "1" both become the JSON key "1" at args)

      assert {:error, %Error{reason: :invalid_args, message: message}} =
               Snakepit.execute("echo", %{m: %{:a => 1, "a" => 2}}, pool: pool)

      assert message == ~s(keys :a and "a" both become the JSON key "a" at args.m)
    end
  end

  describe "results nested past the limit" do
    @describetag :tmp_dir

    setup %{tmp_dir: tmp_dir} do
      File.write!(Path.join(tmp_dir, "deep_adapter.py"), @deep_adapter)

      pool =
        TestPool.start!(
          size: 1,
          env: [{"PYTHONPATH", tmp_dir}],
          adapter_args: ["--adapter", "deep_adapter.DeepAdapter"]
        )

      %{pool: pool}
    end

    test "a result at the limit passes the reply reader and the decoder", %{pool: pool} do
      # The reply frame `{"id":..,"ok":true,"result":...}` nests one level more than its result.
      assert {:ok, result} = Snakepit.execute("nest", %{levels: @max_depth}, pool: pool)
      assert result == deep(@max_depth)
    end

    test "a result deeper than the limit is refused clearly; the worker stays", %{pool: pool} do
      [%{os_pid: os_pid}] = Snakepit.list_workers(pool)

      assert {:error, %Error{reason: :invalid_result, category: :worker} = error} =
               Snakepit.execute("nest", %{levels: @max_depth + 1}, pool: pool)

      assert error.message =~ "nested deeper than 128 levels"
      # Nothing but what every call's error carries (no worker: it stays).
      assert error.details == %{
               reason: :invalid_result,
               command: "nest",
               pool: pool,
               pool_name: pool
             }

      assert {:ok, 1} = Snakepit.execute("nest", %{levels: 0}, pool: pool)
      assert [%{os_pid: ^os_pid}] = Snakepit.list_workers(pool)
    end
  end
end
