defmodule Snakepit.CodecPropertyTest do
  # Property tests of the Rust term ↔ JSON codec (native/snakepit_rs/src/codec.rs) through its
  # test NIFs. PropEr comes from the Debian package erlang-proper (no Hex): its Erlang API is
  # called directly. In Erlang, ?FORALL(X, Gen, Prop) is proper:forall(Gen, fun(X) -> Prop end)
  # and ?LET(X, Gen, In) is proper_types:bind(Gen, fun(X) -> In end, false) (see proper_common.hrl).
  #
  # Each property runs 300 cases; PROPER_NUMTESTS=N runs N.
  use ExUnit.Case, async: true

  @moduletag :property

  alias :proper_types, as: T
  alias Snakepit.Native

  setup_all do
    unless Code.ensure_loaded?(:proper) do
      raise "PropEr is not installed: these property tests need the Debian package " <>
              "erlang-proper (apt-get install erlang-proper), which bin/setup installs"
    end

    :ok
  end

  # --- Running properties -----------------------------------------------------------------------

  # Checks `check` (a function making ExUnit assertions) on values drawn from `generator`. PropEr
  # only learns whether it raised; on failure `check` is run again on the shrunk counterexample
  # so that ExUnit reports its assertion, with the counterexample.
  defp forall(generator, check) do
    property =
      :proper.forall(generator, fn value ->
        try do
          check.(value)
          true
        rescue
          _ -> false
        catch
          _, _ -> false
        end
      end)

    case :proper.quickcheck(property, [{:numtests, numtests()}, :quiet, :long_result]) do
      true ->
        :ok

      [counterexample] ->
        shown = "counterexample: #{inspect(counterexample, limit: :infinity)}"

        try do
          check.(counterexample)
        rescue
          error in ExUnit.AssertionError ->
            reraise %{error | message: "#{error.message}\n#{shown}"}, __STACKTRACE__

          error ->
            reraise ExUnit.AssertionError,
                    [message: "#{Exception.message(error)}\n#{shown}"],
                    __STACKTRACE__
        end

        flunk("failed on #{inspect(counterexample)}, which passes when checked again")

      other ->
        flunk("PropEr could not run the property: #{inspect(other)}")
    end
  end

  defp numtests, do: String.to_integer(System.get_env("PROPER_NUMTESTS", "300"))

  # ?LET: values of `type` passed through `fun` (which may return a value or a generator).
  defp let(type, fun), do: T.bind(type, fun, false)

  # Lists of 0..max items of `type` (PropEr's own lists grow with the size, too long once nested).
  defp list_of(type, max \\ 4), do: let(T.integer(0, max), &T.vector(&1, type))

  # --- Terms that can cross, each with its expected JSON decoding --------------------------------
  #
  # Generators below produce `{term, expected}`: what `json_decode(codec_to_json(term))` must give.

  @i64_min -9_223_372_036_854_775_808
  @u64_max 2 ** 64 - 1

  # The deepest nesting that crosses, both ways (codec::MAX_DEPTH).
  @max_depth 128

  # Integers of any size cross exactly, 64-bit boundaries and beyond.
  defp integer do
    T.frequency([
      {3, T.integer()},
      {2, T.integer(@i64_min, @u64_max)},
      {1, T.integer(-(2 ** 200), 2 ** 200)},
      {1, let(T.integer(64, 3_000), &T.elements([2 ** &1, -(2 ** &1), 2 ** &1 - 1]))},
      {1,
       T.elements([@i64_min, @i64_min - 1, 2 ** 63 - 1, 2 ** 63, @u64_max, @u64_max + 1, 0, -1])}
    ])
  end

  # Any float a BEAM can hold: random bit patterns (subnormals, -0.0, the largest) whose exponent
  # is not all ones (NaN and infinities do not exist in the BEAM), and PropEr's ordinary floats.
  defp float do
    bits =
      let(T.tuple([T.integer(0, 1), T.integer(0, 2046), T.integer(0, 2 ** 52 - 1)]), fn
        {sign, exponent, fraction} ->
          <<float::float>> = <<sign::1, exponent::11, fraction::52>>
          float
      end)

    T.oneof([bits, T.float(), T.elements([0.0, -0.0, 0.1, 1.0e300, 5.0e-324])])
  end

  # UTF-8 text: any code point (controls, quotes, astral planes) and a few awkward ones.
  defp text do
    T.frequency([
      {4, :proper_unicode.utf8()},
      {1, T.elements(["", "\"", "\\", <<0>>, "\u2028", "é", "日本語", "😀", "a\"b\\c\n"])}
    ])
  end

  # Atoms other than true/false/nil become their names. Only Latin-1 ones: a NIF on OTP 25 cannot
  # read others (see `beyond_latin1/0`). PropEr's atoms are Latin-1.
  defp atom do
    T.oneof([
      T.atom(),
      T.elements([:ok, :error, :é, :ÿ, :"with space", :"", Some.Module, :null, :undefined])
    ])
  end

  defp leaf do
    T.frequency([
      {3, let(integer(), &{&1, &1})},
      {2, let(float(), &{&1, &1})},
      {3, let(text(), &{&1, &1})},
      {1, T.elements([{true, true}, {false, false}, {nil, nil}])},
      {1, let(atom(), &{&1, Atom.to_string(&1)})}
    ])
  end

  # A JSON object key: atoms (true/false/nil included) and integers become their text.
  defp key do
    T.oneof([
      let(atom(), &{&1, Atom.to_string(&1)}),
      let(T.elements([true, false, nil]), &{&1, Atom.to_string(&1)}),
      let(text(), &{&1, &1}),
      let(integer(), &{&1, Integer.to_string(&1)})
    ])
  end

  # A term nested at most `depth` levels, as `{term, expected}`.
  defp valid(depth) when depth <= 0, do: leaf()

  defp valid(depth) do
    inner = T.lazy(fn -> valid(depth - 1) end)

    T.frequency([
      {3, leaf()},
      {1, let(list_of(inner), &unzip/1)},
      {1, let(list_of(inner), &(&1 |> unzip() |> to_tuple()))},
      {1, let(list_of(T.tuple([key(), inner])), &valid_map/1)}
    ])
  end

  defp valid, do: T.sized(fn size -> valid(min(4, div(size, 8) + 1)) end)

  defp unzip(pairs), do: Enum.unzip(pairs)

  defp to_tuple({items, expected}), do: {List.to_tuple(items), expected}

  # Entries whose keys normalize to the same text would be refused (see `colliding_map/0`): the
  # first one is kept.
  defp valid_map(entries) do
    entries = Enum.uniq_by(entries, fn {{_key, text}, _value} -> text end)

    {Map.new(entries, fn {{key, _}, {value, _}} -> {key, value} end),
     Map.new(entries, fn {{_, text}, {_, expected}} -> {text, expected} end)}
  end

  # Equality that tells 1 from 1.0 (as `===` does) and 0.0 from -0.0 (which `===` does not before
  # OTP 27): floats must come back bit for bit.
  defp same?(a, b) when is_float(a) and is_float(b), do: <<a::float>> == <<b::float>>

  defp same?(a, b) when is_list(a) and is_list(b),
    do: length(a) == length(b) and Enum.all?(Enum.zip(a, b), fn {x, y} -> same?(x, y) end)

  defp same?(a, b) when is_map(a) and is_map(b),
    do:
      map_size(a) == map_size(b) and Enum.all?(a, fn {k, v} -> same?(v, Map.get(b, k, :none)) end)

  defp same?(a, b), do: a === b

  # --- Terms that cannot cross, each with where and why ------------------------------------------
  #
  # Generators below produce `{term, path, fragment}`: exactly one thing cannot be encoded, found
  # at `path` (relative to the root `args`), and the error message contains `fragment`.

  defp bad_binary do
    invalid =
      T.elements([<<0xFF>>, <<0xC0, 0x80>>, <<0xED, 0xA0, 0x80>>, <<0xE6, 0x97>>, <<0x80>>])

    T.oneof([
      let(T.tuple([text(), invalid, text()]), fn {a, b, c} -> a <> b <> c end),
      T.elements([<<1::3>>, <<"ok", 1::1>>])
    ])
  end

  defp improper_list do
    tail = T.oneof([integer(), text(), T.elements([:tail, %{}, {}])])

    let(T.tuple([T.non_empty(list_of(valid(1))), tail]), fn {items, tail} ->
      {items, _} = unzip(items)
      items ++ tail
    end)
  end

  # Atoms with a character beyond Latin-1 (from U+0100 on), which a NIF cannot read on OTP 25.
  defp beyond_latin1, do: T.elements([:Ā, :日本, :"a😀b", :ÿĀ, :Жук])

  # A map with one key that cannot become a JSON key, among valid entries.
  defp bad_key_map do
    bad_key =
      T.oneof([
        let(bad_binary(), &{&1, "[<non-UTF-8 binary>]", "map key is not valid UTF-8"}),
        let(beyond_latin1(), &{&1, ".<atom beyond Latin-1>", "beyond Latin-1"}),
        let(T.oneof([float(), T.elements([[1], {:a}, %{}, self(), make_ref()])]), fn key ->
          {key, "[<key>]", "map keys must be atoms, strings or integers"}
        end)
      ])

    let(T.tuple([bad_key, valid(1), list_of(T.tuple([key(), valid(1)]))]), fn
      {{key, path, fragment}, {value, _}, entries} ->
        {map, _} = valid_map(entries)
        {Map.put(map, key, value), path, fragment}
    end)
  end

  # A map with two keys of different kinds that become the same JSON key (`1` and `"1"`, `:a`
  # and `"a"`), among valid entries.
  defp colliding_map do
    pair =
      T.oneof([
        let(atom(), &{&1, Atom.to_string(&1)}),
        let(T.elements([true, false, nil]), &{&1, Atom.to_string(&1)}),
        let(integer(), &{&1, Integer.to_string(&1)}),
        let(T.integer(), &{String.to_atom(Integer.to_string(&1)), &1})
      ])

    let(T.tuple([pair, valid(1), valid(1), list_of(T.tuple([key(), valid(1)]))]), fn
      {{key, other_key}, {value, _}, {other_value, _}, entries} ->
        text = key_text(key)
        {map, _} = entries |> Enum.reject(fn {{_, other}, _} -> other == text end) |> valid_map()
        map = map |> Map.put(key, value) |> Map.put(other_key, other_value)
        {map, "", "both become the JSON key"}
    end)
  end

  defp key_text(key) when is_atom(key), do: Atom.to_string(key)
  defp key_text(key) when is_integer(key), do: Integer.to_string(key)

  defp poison do
    T.oneof([
      T.elements([{self(), "", "pid"}, {make_ref(), "", "reference"}]),
      T.elements([{fn -> :ok end, "", "function"}, {&String.length/1, "", "function"}]),
      T.elements([{hd(Port.list()), "", "port"}]),
      let(bad_binary(), &{&1, "", "not valid UTF-8"}),
      let(improper_list(), &{&1, "", "improper list"}),
      let(beyond_latin1(), &{&1, "", "beyond Latin-1"}),
      bad_key_map(),
      colliding_map()
    ])
  end

  # Keys on the way to the poison, with the path step the codec writes for them and their JSON
  # text. String keys use characters that the codec's path quoting (Rust's `{:?}`) leaves as they
  # are.
  defp path_key do
    plain = T.list(T.elements(~c"abcxyz_019 -éßЖ日本😀"))

    T.oneof([
      let(atom(), &{&1, "." <> Atom.to_string(&1), Atom.to_string(&1)}),
      let(plain, &{List.to_string(&1), ~s(["#{&1}"]), List.to_string(&1)}),
      let(integer(), &{&1, "[#{&1}]", Integer.to_string(&1)})
    ])
  end

  # The poison, nested `depth` levels at most in lists, tuples and maps among valid siblings.
  defp poisoned(depth) when depth <= 0, do: poison()

  defp poisoned(depth) do
    inner = T.lazy(fn -> poisoned(depth - 1) end)
    siblings = list_of(valid(1), 3)

    in_sequence =
      let(T.tuple([siblings, inner, siblings]), fn {before, {term, path, fragment}, rest} ->
        {before, _} = unzip(before)
        {rest, _} = unzip(rest)
        {before ++ [term | rest], "[#{length(before)}]" <> path, fragment}
      end)

    in_tuple =
      let(in_sequence, fn {list, path, fragment} -> {List.to_tuple(list), path, fragment} end)

    in_map =
      let(T.tuple([path_key(), inner, list_of(T.tuple([key(), valid(1)]), 3)]), fn
        {{key, step, text}, {term, path, fragment}, entries} ->
          others = Enum.reject(entries, fn {{_, other}, _} -> other == text end)
          {map, _} = valid_map(others)
          {Map.put(map, key, term), step <> path, fragment}
      end)

    T.frequency([{1, poison()}, {2, in_sequence}, {1, in_tuple}, {2, in_map}])
  end

  # --- Deep terms ---------------------------------------------------------------------------------
  #
  # `{term, expected, json, levels}`: a leaf inside `levels` lists, tuples and one-key maps, what
  # it decodes to, and its JSON built by hand. Up to 8 levels past the limit; near it often.

  defp deep do
    levels =
      T.frequency([
        {1, T.integer(0, @max_depth + 8)},
        {2, T.integer(@max_depth - 2, @max_depth + 2)}
      ])

    wrapper = T.oneof([T.elements([:list, :tuple]), key()])

    let(T.tuple([leaf(), let(levels, &T.vector(&1, wrapper))]), fn {{leaf, expected}, wrappers} ->
      {:ok, json} = Native.codec_to_json(leaf)

      Enum.reduce(wrappers, {leaf, expected, json, 0}, fn
        :list, {term, expected, json, levels} ->
          {[term], [expected], "[#{json}]", levels + 1}

        :tuple, {term, expected, json, levels} ->
          {{term}, [expected], "[#{json}]", levels + 1}

        {key, text}, {term, expected, json, levels} ->
          {:ok, key_json} = Native.codec_to_json(text)
          {%{key => term}, %{text => expected}, "{#{key_json}:#{json}}", levels + 1}
      end)
    end)
  end

  # --- Properties -------------------------------------------------------------------------------

  test "every term that can cross encodes, and decodes back to its JSON normalization" do
    forall(valid(), fn {term, expected} ->
      assert {:ok, json} = Native.codec_to_json(term)
      assert {:ok, decoded} = Native.json_decode(json)

      assert same?(decoded, expected),
             "json: #{json}\ndecoded:  #{inspect(decoded)}\nexpected: #{inspect(expected)}"
    end)
  end

  test "a term that cannot cross is refused, naming where it is" do
    forall(poisoned(4), fn {term, path, fragment} ->
      assert {:error, message} = Native.codec_to_json(term)
      assert message =~ fragment
      assert String.ends_with?(message, " at args" <> path)
    end)
  end

  test "terms nested up to the limit cross both ways; one level more is refused both ways" do
    forall(deep(), fn {term, expected, json, levels} ->
      if levels <= @max_depth do
        assert Native.codec_to_json(term) == {:ok, json}
        assert {:ok, decoded} = Native.json_decode(json)
        assert same?(decoded, expected)
      else
        assert {:error, message} = Native.codec_to_json(term)
        assert message =~ "nested deeper than #{@max_depth} levels"
        assert {:error, {:invalid_result, message, %{}}} = Native.json_decode(json)
        assert message =~ "nested deeper than #{@max_depth} levels"
      end
    end)
  end

  test "json_decode never crashes, whatever the bytes" do
    mutated =
      let(T.tuple([valid(), T.non_neg_integer(), T.byte()]), fn {{term, _}, at, byte} ->
        {:ok, json} = Native.codec_to_json(term)
        at = rem(at, byte_size(json) + 1)
        <<head::binary-size(at), rest::binary>> = json
        dropped = if rest == "", do: "", else: binary_part(rest, 1, byte_size(rest) - 1)
        # Truncated, with a byte inserted, with a byte dropped.
        T.elements([head, head <> <<byte>> <> rest, head <> dropped])
      end)

    nested =
      let(T.tuple([T.integer(0, 20_000), T.elements([{"[", "]"}, {~s({"a":), "}"}])]), fn
        {depth, {open, close}} ->
          String.duplicate(open, depth) <> "1" <> String.duplicate(close, depth)
      end)

    forall(T.oneof([T.binary(), :proper_unicode.utf8(), mutated, nested]), fn bytes ->
      case Native.json_decode(bytes) do
        {:ok, _} -> :ok
        {:error, {:invalid_result, message, %{}}} -> assert is_binary(message)
      end
    end)
  end
end
