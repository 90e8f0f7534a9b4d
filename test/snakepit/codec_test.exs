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
      assert to_json(2 ** 64) == {:ok, "18446744073709551616"}
      assert to_json(-(2 ** 63) - 1) == {:ok, "-9223372036854775809"}
      assert to_json(-(2 ** 100)) == {:ok, "-1267650600228229401496703205376"}
      assert to_json(2 ** 1000) == {:ok, Integer.to_string(2 ** 1000)}
      assert to_json(1.5) == {:ok, "1.5"}
      assert to_json(-0.0) == {:ok, "-0.0"}
      assert to_json("héllo \"q\" \n\t\u0001") == {:ok, ~S("héllo \"q\" \n\t\u0001")}
      assert to_json({1, "a", :b}) == {:ok, ~s([1,"a","b"])}
      assert to_json([1, [2, [3]]]) == {:ok, "[1,[2,[3]]]"}
      assert to_json(%{1 => "int key"}) == {:ok, ~s({"1":"int key"})}
      assert to_json(%{(2 ** 70) => 1}) == {:ok, ~s({"1180591620717411303424":1})}
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
      assert {:error, message} = to_json(%{(2 ** 70) => [self()]})
      assert message =~ "pid" and message =~ "args[1180591620717411303424][0]"
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
      assert {:ok, _} = to_json(deep(128))
      assert {:ok, _} = to_json(%{x: deep(126, {})})
      assert {:error, message} = to_json(deep(129))
      assert message =~ "nested deeper than 128 levels"
      assert {:error, message} = to_json(%{x: deep(126, %{y: []})})
      assert message =~ "nested deeper than 128 levels"
      # Regression: 6000 levels used to crash the VM.
      assert {:error, _} = to_json(%{x: deep(6_000)})
    end

    test "keys of different kinds that become the same JSON key are refused" do
      assert to_json(%{1 => "a", "1" => "b"}) ==
               {:error, ~s(keys 1 and "1" both become the JSON key "1" at args)}

      assert to_json(%{m: [%{:a => 1, "a" => 2}]}) ==
               {:error, ~s(keys :a and "a" both become the JSON key "a" at args.m[0])}

      assert to_json(%{:"1" => 1, 1 => 2}) ==
               {:error, ~s(keys 1 and :"1" both become the JSON key "1" at args)}

      assert {:error, message} = to_json(%{nil => 1, "nil" => 2})
      assert message =~ ~s(both become the JSON key "nil")
      assert {:error, message} = to_json(%{(2 ** 70) => 1, "1180591620717411303424" => 2})
      assert message =~ "both become the JSON key"

      # Keys of several kinds that stay apart cross.
      {:ok, json} = to_json(%{1 => 1, :a => 2, "b" => 3})
      assert from_json(json) == {:ok, %{"1" => 1, "a" => 2, "b" => 3}}
    end
  end

  describe "decoding" do
    test "every JSON kind" do
      assert from_json(~s({"a":[1,-2,3.5,"x",true,false,null,{}],"b":{"c":[]}})) ==
               {:ok, %{"a" => [1, -2, 3.5, "x", true, false, nil, %{}], "b" => %{"c" => []}}}

      assert from_json(~S("\u00e9\n")) == {:ok, "é\n"}
      assert from_json("18446744073709551615") == {:ok, 18_446_744_073_709_551_615}
      assert from_json("-9223372036854775808") == {:ok, -9_223_372_036_854_775_808}
      assert from_json(" [ 1 , { \"a\" : [ ] } ]\n") == {:ok, [1, %{"a" => []}]}
      assert {:error, {:invalid_result, message, %{}}} = from_json("1e400")
      assert message =~ "beyond the range of a float"
    end

    test "integers of any size are exact; fractions and exponents make floats" do
      # Regression: beyond 64 bits they came back as floats (1.1805916207174113e21), and beyond
      # a float's range not at all.
      assert from_json("1180591620717411303424") == {:ok, 2 ** 70}
      assert from_json("18446744073709551616") == {:ok, 2 ** 64}
      assert from_json("-9223372036854775809") == {:ok, -(2 ** 63) - 1}
      assert from_json("-1267650600228229401496703205376") == {:ok, -(2 ** 100)}
      assert from_json(Integer.to_string(10 ** 400)) == {:ok, 10 ** 400}
      assert from_json("[#{2 ** 70},-0,0]") == {:ok, [2 ** 70, 0, 0]}

      for {json, float} <- [{"1.0", 1.0}, {"1e3", 1.0e3}, {"-0.0", -0.0}, {"1E+2", 100.0}] do
        assert {:ok, decoded} = from_json(json)
        assert is_float(decoded) and <<decoded::float>> == <<float::float>>, json
      end

      assert from_json("18446744073709551616.0") == {:ok, 18_446_744_073_709_551_616.0}
    end

    test "nesting is bounded as for encoding: whatever can be sent can be received" do
      assert from_json(deep_json(128)) == {:ok, deep(128)}

      objects = fn levels ->
        String.duplicate(~s({"a":), levels) <> "1" <> String.duplicate("}", levels)
      end

      assert {:ok, _} = from_json(objects.(128))
      assert {:error, {:invalid_result, _, %{}}} = from_json(objects.(129))

      # Regression: a result could nest one level less than args (127).
      {:ok, json} = to_json(deep(128))
      assert from_json(json) == {:ok, deep(128)}

      assert {:error, {:invalid_result, message, %{}}} = from_json(deep_json(129))
      assert message =~ "nested deeper than 128 levels"
      # Deeper still: refused before the stack runs out.
      assert {:error, {:invalid_result, _, %{}}} = from_json(deep_json(1_000_000))
    end

    test "a lone surrogate, which no UTF-8 binary holds, is refused" do
      assert from_json(~S("\ud83d\ude00")) == {:ok, "😀"}

      for bad <- [~S("\ud800"), ~S("\udc00"), ~S("\ud800\u0041"), ~S("\ud800x")] do
        assert {:error, {:invalid_result, message, %{}}} = from_json(bad)
        assert message =~ "lone surrogate"
      end
    end

    test "duplicate keys: the last wins" do
      assert from_json(~s({"a":1,"a":2})) == {:ok, %{"a" => 2}}
    end

    test "invalid JSON is an error" do
      bad =
        ["", "{", ~s({"a":}), "[1,]", "nul", ~s("\\x"), "{} extra", "01", "1.", ".5", "+1", "-"] ++
          ["1e", "[1 2]", ~s({"a" 1}), ~s({1:2}), ~s("a\tb"), ~s("abc), "[", <<0xFF>>, "tru"]

      for json <- bad do
        assert {:error, {:invalid_result, message, %{}}} = from_json(json),
               "accepted #{inspect(json)}"

        assert message =~ "undecodable result"
      end
    end
  end

  # `levels` lists around `inner`.
  defp deep(levels, inner \\ 1), do: Enum.reduce(1..levels//1, inner, fn _, acc -> [acc] end)

  defp deep_json(levels),
    do: String.duplicate("[", levels) <> "1" <> String.duplicate("]", levels)

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
