defmodule Snakepit.CodecTest do
  # Terms ↔ JSON in Rust (native/snakepit_rs/src/codec.rs), through the codec's test NIFs and
  # through a real worker's echo.
  use ExUnit.Case, async: true

  alias Snakepit.{Native, TestPool}

  defp to_json(term), do: Native.codec_to_json(term)
  defp from_json(json), do: Native.json_decode(json)

  describe "encoding" do
    test "every term kind that can cross" do
      assert to_json(%{}) == {:ok, "{}"}
      assert to_json([]) == {:ok, "[]"}
      assert to_json(nil) == {:ok, "null"}
      assert to_json(true) == {:ok, "true"}
      assert to_json(false) == {:ok, "false"}
      assert to_json(:atom) == {:ok, ~s("atom")}
      assert to_json(Elixir.Some.Module) == {:ok, ~s("Elixir.Some.Module")}
      assert to_json(42) == {:ok, "42"}
      assert to_json(-9_223_372_036_854_775_808) == {:ok, "-9223372036854775808"}
      assert to_json(18_446_744_073_709_551_615) == {:ok, "18446744073709551615"}
      assert to_json(1.5) == {:ok, "1.5"}
      assert to_json(-0.0) == {:ok, "-0.0"}
      assert to_json("héllo \"q\" \n\t\u0001") == {:ok, ~S("héllo \"q\" \n\t\u0001")}
      assert to_json({1, "a", :b}) == {:ok, ~s([1,"a","b"])}
      assert to_json([1, [2, [3]]]) == {:ok, "[1,[2,[3]]]"}
      assert to_json(%{1 => "int key"}) == {:ok, ~s({"1":"int key"})}
      assert to_json(%{nil => 1}) == {:ok, ~s({"nil":1})}
    end

    test "maps with atom and string keys" do
      {:ok, json} = to_json(%{:a => 1, "b" => [true]})
      assert json in [~s({"a":1,"b":[true]}), ~s({"b":[true],"a":1})]
    end

    test "terms that cannot cross name their place" do
      assert {:error, "a pid cannot be sent to a worker at args"} = to_json(self())
      assert {:error, message} = to_json(%{a: [%{"b" => make_ref()}]})
      assert message =~ "reference" and message =~ ~s(args.a[0]["b"])
      assert {:error, message} = to_json([fn -> 1 end])
      assert message =~ "function" and message =~ "args[0]"
      assert {:error, message} = to_json({:ok, <<0xFF>>})
      assert message =~ "UTF-8" and message =~ "args[1]"
      assert {:error, message} = to_json([1, 2 | 3])
      assert message =~ "improper list"
      assert {:error, message} = to_json(%{n: 2 ** 64})
      assert message =~ "64 bits" and message =~ "args.n"
      assert {:error, message} = to_json(%{[1] => 1})
      assert message =~ "map keys"
      assert {:error, message} = to_json(%{<<0xFF>> => 1})
      assert message =~ "UTF-8"
      assert {:error, message} = to_json(Port.list() |> hd())
      assert message =~ "port"
      assert {:error, message} = to_json(<<1::3>>)
      assert message =~ "UTF-8"
    end

    test "nesting is bounded (the encoder must not exhaust a scheduler's stack)" do
      deep = fn depth -> Enum.reduce(1..depth, 1, fn _, acc -> [acc] end) end
      assert {:ok, _} = to_json(deep.(127))
      assert {:error, message} = to_json(deep.(128))
      assert message =~ "nested deeper than 128 levels"
      # Regression: 6000 levels used to crash the VM.
      assert {:error, _} = to_json(%{x: deep.(6_000)})
    end
  end

  describe "decoding" do
    test "every JSON kind" do
      assert from_json(~s({"a":[1,-2,3.5,"x",true,false,null,{}],"b":{"c":[]}})) ==
               {:ok, %{"a" => [1, -2, 3.5, "x", true, false, nil, %{}], "b" => %{"c" => []}}}

      assert from_json(~S("\u00e9\n")) == {:ok, "é\n"}
      assert from_json("18446744073709551615") == {:ok, 18_446_744_073_709_551_615}
      assert from_json("1e400") |> elem(0) == :error
    end

    test "duplicate keys: the last wins" do
      assert from_json(~s({"a":1,"a":2})) == {:ok, %{"a" => 2}}
    end

    test "invalid JSON is an error" do
      for bad <- ["", "{", ~s({"a":}), "[1,]", "nul", ~s("\\x"), "{} extra"] do
        assert {:error, _} = from_json(bad), "accepted #{inspect(bad)}"
      end
    end
  end

  test "round trip through a real worker" do
    pool = TestPool.start!(size: 1)

    args = %{
      ints: [0, -1, 2 ** 62],
      floats: [0.1, 1.0e300],
      text: "日本語",
      tuple: {1, {2}},
      nil: nil
    }

    assert {:ok, reply} = Snakepit.execute("echo", args, pool: pool)

    assert reply == %{
             "ints" => [0, -1, 2 ** 62],
             "floats" => [0.1, 1.0e300],
             "text" => "日本語",
             "tuple" => [1, [2]],
             "nil" => nil
           }
  end
end
