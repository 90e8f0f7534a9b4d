defmodule Snakepit.ArgsTest do
  # Args as upstream Snakepit's users give them: keyword lists (or lists of pairs) and nil.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  describe "keyword lists and nil" do
    setup do
      %{pool: TestPool.start_test_workers!(size: 1)}
    end

    test "a keyword list or list of pairs is sent as a map; nil as an empty one", %{pool: pool} do
      assert {:ok, %{"a" => 1, "b" => "two"}} =
               Snakepit.execute("echo", [a: 1, b: "two"], pool: pool)

      assert {:ok, %{"a" => 1, "b" => 2}} =
               Snakepit.execute("echo", [{"a", 1}, {:b, 2}], pool: pool)

      assert {:ok, %{}} = Snakepit.execute("echo", [], pool: pool)
      assert {:ok, %{}} = Snakepit.execute("echo", nil, pool: pool)
    end

    test "other lists, repeated keys and keys that collide are refused", %{pool: pool} do
      for {args, text} <- [
            {[1, 2], "args must be a map, a keyword list"},
            {[{1, 2}], "args must be a map, a keyword list"},
            {[{:a, 1} | :tail], "args must be a map, a keyword list"},
            {[a: 1, a: 2], "args repeat a key: :a"},
            {[{"a", 1}, {:a, 2}], ~s(both become the JSON key "a")}
          ] do
        assert {:error, %Error{reason: :invalid_args, category: :validation, message: message}} =
                 Snakepit.execute("echo", args, pool: pool)

        assert message =~ text
      end

      assert Snakepit.get_stats(pool).requests == 0
    end
  end
end
