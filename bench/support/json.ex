defmodule SnakepitBench.JSON do
  @moduledoc """
  A small JSON codec for the baseline pool (OTP 25 and Elixir 1.14 ship none, Jason can't be
  fetched here).

  `encode/1` takes maps (atom or string keys), lists, strings, numbers, booleans, `nil` and other
  atoms (as strings) and returns iodata. `decode/1` parses any JSON text (RFC 8259) into maps with
  string keys, lists, strings, integers, floats, booleans and `nil`; strings are checked to be
  UTF-8. Both walk binaries with pattern matching and slice unescaped runs out of the input
  rather than copying byte by byte.
  """

  ## Encoding

  @doc "Encodes `term` as JSON iodata."
  @spec encode(term()) :: iodata()
  def encode(nil), do: "null"
  def encode(true), do: "true"
  def encode(false), do: "false"
  def encode(value) when is_atom(value), do: string(Atom.to_string(value))
  def encode(value) when is_binary(value), do: string(value)
  def encode(value) when is_integer(value), do: Integer.to_string(value)
  def encode(value) when is_float(value), do: :erlang.float_to_binary(value, [:short])
  def encode([]), do: "[]"
  def encode([first | rest]), do: [?[, encode(first), Enum.map(rest, &[?, | encode(&1)]), ?]]

  def encode(map) when is_map(map) and map_size(map) == 0, do: "{}"

  def encode(map) when is_map(map) do
    [[_comma | first] | rest] =
      Enum.map(map, fn {key, value} -> [?,, key(key), ?: | encode(value)] end)

    [?{, first, rest, ?}]
  end

  defp key(key) when is_binary(key), do: string(key)
  defp key(key) when is_atom(key), do: string(Atom.to_string(key))

  # A string with `"`, `\` and control characters escaped; every other byte is copied as is.
  defp string(value), do: [?", escape(value, value, 0, 0, []), ?"]

  # `start` and `len` delimit the current run of bytes that need no escaping in `original`.
  defp escape(<<byte, rest::binary>>, original, start, len, acc)
       when byte >= 0x20 and byte != ?" and byte != ?\\,
       do: escape(rest, original, start, len + 1, acc)

  defp escape(<<byte, rest::binary>>, original, start, len, acc),
    do:
      escape(rest, original, start + len + 1, 0, [
        acc,
        binary_part(original, start, len) | escape_byte(byte)
      ])

  defp escape(<<>>, original, start, len, acc), do: [acc | binary_part(original, start, len)]

  defp escape_byte(?"), do: "\\\""
  defp escape_byte(?\\), do: "\\\\"
  defp escape_byte(?\n), do: "\\n"
  defp escape_byte(?\r), do: "\\r"
  defp escape_byte(?\t), do: "\\t"
  defp escape_byte(byte), do: ["\\u00", hex(div(byte, 16)), hex(rem(byte, 16))]

  defp hex(digit) when digit < 10, do: ?0 + digit
  defp hex(digit), do: ?a + digit - 10

  ## Decoding

  @doc "Decodes one JSON value; `{:error, reason}` if `binary` is not exactly one valid value."
  @spec decode(binary()) :: {:ok, term()} | {:error, term()}
  def decode(binary) when is_binary(binary) do
    {value, rest} = value(binary)

    case skip_ws(rest) do
      <<>> -> {:ok, value}
      rest -> {:error, {:unexpected, rest}}
    end
  catch
    {__MODULE__, reason} -> {:error, reason}
  end

  defp fail(reason), do: throw({__MODULE__, reason})

  # Every parser below skips the whitespace in front of what it expects with its own first
  # clause, and returns `{value, rest_of_input}`.
  defguardp is_ws(byte) when byte in ~c" \t\n\r"

  defp skip_ws(<<byte, rest::binary>>) when is_ws(byte), do: skip_ws(rest)
  defp skip_ws(rest), do: rest

  defp value(<<byte, rest::binary>>) when is_ws(byte), do: value(rest)
  defp value(<<?{, rest::binary>>), do: object_first(rest)
  defp value(<<?[, rest::binary>>), do: array_first(rest)
  defp value(<<?", rest::binary>>), do: string_run(rest, rest, 0, [])
  defp value(<<"true", rest::binary>>), do: {true, rest}
  defp value(<<"false", rest::binary>>), do: {false, rest}
  defp value(<<"null", rest::binary>>), do: {nil, rest}
  defp value(<<byte, _::binary>> = input) when byte == ?- or byte in ?0..?9, do: number(input)
  defp value(rest), do: fail({:unexpected, rest})

  defp object_first(<<byte, rest::binary>>) when is_ws(byte), do: object_first(rest)
  defp object_first(<<?}, rest::binary>>), do: {%{}, rest}
  defp object_first(rest), do: object_key(rest, [])

  defp object_key(<<byte, rest::binary>>, acc) when is_ws(byte), do: object_key(rest, acc)

  defp object_key(<<?", rest::binary>>, acc) do
    {key, rest} = string_run(rest, rest, 0, [])
    {value, rest} = object_colon(rest)
    object_next(rest, [{key, value} | acc])
  end

  defp object_key(rest, _acc), do: fail({:unexpected, rest})

  defp object_colon(<<byte, rest::binary>>) when is_ws(byte), do: object_colon(rest)
  defp object_colon(<<?:, rest::binary>>), do: value(rest)
  defp object_colon(rest), do: fail({:unexpected, rest})

  defp object_next(<<byte, rest::binary>>, acc) when is_ws(byte), do: object_next(rest, acc)
  defp object_next(<<?,, rest::binary>>, acc), do: object_key(rest, acc)
  # Reversed so that the last of duplicate keys wins, as in most decoders.
  defp object_next(<<?}, rest::binary>>, acc), do: {:maps.from_list(:lists.reverse(acc)), rest}
  defp object_next(rest, _acc), do: fail({:unexpected, rest})

  defp array_first(<<byte, rest::binary>>) when is_ws(byte), do: array_first(rest)
  defp array_first(<<?], rest::binary>>), do: {[], rest}
  defp array_first(rest), do: array_item(rest, [])

  defp array_item(input, acc) do
    {value, rest} = value(input)
    array_next(rest, [value | acc])
  end

  defp array_next(<<byte, rest::binary>>, acc) when is_ws(byte), do: array_next(rest, acc)
  defp array_next(<<?,, rest::binary>>, acc), do: array_item(rest, acc)
  defp array_next(<<?], rest::binary>>, acc), do: {:lists.reverse(acc), rest}
  defp array_next(rest, _acc), do: fail({:unexpected, rest})

  # Strings: `run` is the input where the current unescaped run starts, `len` its length so far,
  # `acc` the decoded pieces before it (empty unless the string has escapes).
  defp string_run(<<?", rest::binary>>, run, len, acc),
    do: {finish_string(acc, binary_part(run, 0, len)), rest}

  defp string_run(<<?\\, rest::binary>>, run, len, acc) do
    {char, rest} = unescape(rest)
    string_run(rest, rest, 0, [acc, binary_part(run, 0, len) | char])
  end

  defp string_run(<<byte, rest::binary>>, run, len, acc) when byte >= 0x20 and byte < 0x80,
    do: string_run(rest, run, len + 1, acc)

  # Non-ASCII: must be a whole UTF-8 sequence.
  defp string_run(<<char::utf8, rest::binary>>, run, len, acc) when char >= 0x80,
    do: string_run(rest, run, len + utf8_size(char), acc)

  defp string_run(rest, _run, _len, _acc), do: fail({:invalid_string, rest})

  defp finish_string([], run), do: run
  defp finish_string(acc, run), do: IO.iodata_to_binary([acc | run])

  defp utf8_size(char) when char < 0x800, do: 2
  defp utf8_size(char) when char < 0x10000, do: 3
  defp utf8_size(_char), do: 4

  defp unescape(<<?", rest::binary>>), do: {"\"", rest}
  defp unescape(<<?\\, rest::binary>>), do: {"\\", rest}
  defp unescape(<<?/, rest::binary>>), do: {"/", rest}
  defp unescape(<<?b, rest::binary>>), do: {"\b", rest}
  defp unescape(<<?f, rest::binary>>), do: {"\f", rest}
  defp unescape(<<?n, rest::binary>>), do: {"\n", rest}
  defp unescape(<<?r, rest::binary>>), do: {"\r", rest}
  defp unescape(<<?t, rest::binary>>), do: {"\t", rest}

  # A UTF-16 surrogate pair written as two \u escapes is one character.
  defp unescape(<<?u, high::binary-4, "\\u", low::binary-4, rest::binary>> = input) do
    case {hex4(high), hex4(low)} do
      {h, l} when h in 0xD800..0xDBFF and l in 0xDC00..0xDFFF ->
        {<<0x10000 + (h - 0xD800) * 0x400 + (l - 0xDC00)::utf8>>, rest}

      _ ->
        unescape_one(input)
    end
  end

  defp unescape(input), do: unescape_one(input)

  defp unescape_one(<<?u, code::binary-4, rest::binary>>) do
    case hex4(code) do
      char when char in 0xD800..0xDFFF -> fail({:lone_surrogate, code})
      char -> {<<char::utf8>>, rest}
    end
  end

  defp unescape_one(rest), do: fail({:invalid_escape, rest})

  defp hex4(digits) do
    case Integer.parse(digits, 16) do
      {value, ""} when value >= 0 -> value
      _ -> fail({:invalid_escape, digits})
    end
  end

  # Numbers follow  -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?  . The scanners below walk
  # that grammar counting bytes (`len`) and remembering where the integer part ends (`int`), then
  # the token is sliced out of `input` and converted by the runtime.
  defp number(<<?-, rest::binary>> = input), do: int_part(rest, input, 1)
  defp number(input), do: int_part(input, input, 0)

  defp int_part(<<?0, rest::binary>>, input, len), do: frac_part(rest, input, len + 1)

  defp int_part(<<d, rest::binary>>, input, len) when d in ?1..?9,
    do: int_digits(rest, input, len + 1)

  defp int_part(_rest, input, _len), do: fail({:invalid_number, input})

  defp int_digits(<<d, rest::binary>>, input, len) when d in ?0..?9,
    do: int_digits(rest, input, len + 1)

  defp int_digits(rest, input, len), do: frac_part(rest, input, len)

  defp frac_part(<<?., d, rest::binary>>, input, len) when d in ?0..?9,
    do: frac_digits(rest, input, len + 2, len)

  defp frac_part(<<?., _::binary>>, input, _len), do: fail({:invalid_number, input})

  defp frac_part(<<e, rest::binary>>, input, len) when e in ~c"eE",
    do: exp_sign(rest, input, len + 1, len)

  defp frac_part(rest, input, len), do: {String.to_integer(binary_part(input, 0, len)), rest}

  defp frac_digits(<<d, rest::binary>>, input, len, int) when d in ?0..?9,
    do: frac_digits(rest, input, len + 1, int)

  defp frac_digits(<<e, rest::binary>>, input, len, int) when e in ~c"eE",
    do: exp_sign(rest, input, len + 1, int)

  defp frac_digits(rest, input, len, _int), do: {to_float(binary_part(input, 0, len)), rest}

  defp exp_sign(<<s, d, rest::binary>>, input, len, int) when s in ~c"+-" and d in ?0..?9,
    do: exp_digits(rest, input, len + 2, int)

  defp exp_sign(<<d, rest::binary>>, input, len, int) when d in ?0..?9,
    do: exp_digits(rest, input, len + 1, int)

  defp exp_sign(_rest, input, _len, _int), do: fail({:invalid_number, input})

  defp exp_digits(<<d, rest::binary>>, input, len, int) when d in ?0..?9,
    do: exp_digits(rest, input, len + 1, int)

  defp exp_digits(rest, input, len, int) do
    token = binary_part(input, 0, len)

    case token do
      # binary_to_float/1 needs a fraction: "1e5" is read as "1.0e5".
      <<whole::binary-size(int), e, _::binary>> when e in ~c"eE" ->
        {to_float([whole, ".0" | binary_part(token, int, len - int)]), rest}

      _ ->
        {to_float(token), rest}
    end
  end

  # Out of range (e.g. 1e400) is an error, as JSON has no infinity.
  defp to_float(text) do
    :erlang.binary_to_float(IO.iodata_to_binary(text))
  rescue
    ArgumentError -> fail({:invalid_number, IO.iodata_to_binary(text)})
  end
end
