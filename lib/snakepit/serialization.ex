defmodule Snakepit.Serialization do
  @moduledoc """
  Recognizing the values a Python worker could not convert to JSON.

  A Python tool may return values JSON has no type for. The bridge converts them as upstream
  Snakepit v0.13 does ("graceful serialization"): `datetime`/`date` become ISO 8601 strings,
  tuples and sets lists, objects with `model_dump()`, `to_dict()`, `_asdict()` or `tolist()`
  what those return, NaN and infinities `nil` inside a result (`"NaN"`, `"Infinity"`,
  `"-Infinity"` as a whole result). Anything else, `bytes` included, arrives as an
  *unserializable marker* in its place, so the rest of the result still arrives:

      %{"__ffi_unserializable__" => true, "__type__" => "mylib.Client"}

  With `SNAKEPIT_UNSERIALIZABLE_DETAIL` set in the workers' environment (a pool's `:env`, or the
  BEAM's) the marker also has a `"__repr__"`: `type` gives `"<unserializable T>"`,
  `repr_truncated` the object's Python repr (cut to `SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN`
  characters, 500 by default, 2000 at most), `repr_redacted_truncated` the same with API keys,
  bearer tokens and passwords replaced by `<REDACTED>` (best effort). The default, `none`, adds
  nothing. `priv/python/snakepit_bridge/serialization.py` documents the conversion in full.

  A value that contains itself is still an error (`SerializationError`).
  """

  @marker "__ffi_unserializable__"

  @typedoc "What `unserializable_info/1` tells about a marker; a field the marker lacks is `nil`."
  @type info :: %{type: String.t() | nil, repr: String.t() | nil}

  @doc """
  Whether `value` is an unserializable marker: a map whose `"__ffi_unserializable__"` is `true`.

      iex> Snakepit.Serialization.unserializable?(%{"__ffi_unserializable__" => true, "__type__" => "builtins.bytes"})
      true
      iex> Snakepit.Serialization.unserializable?(%{"code" => 200})
      false
      iex> Snakepit.Serialization.unserializable?("text")
      false
  """
  @spec unserializable?(term()) :: boolean()
  def unserializable?(%{@marker => true}), do: true
  def unserializable?(_value), do: false

  @doc """
  The Python type and repr a marker carries, or `:error` when `value` is not a marker.

      iex> Snakepit.Serialization.unserializable_info(%{"__ffi_unserializable__" => true, "__type__" => "decimal.Decimal"})
      {:ok, %{type: "decimal.Decimal", repr: nil}}
      iex> Snakepit.Serialization.unserializable_info(%{"a" => 1})
      :error
  """
  @spec unserializable_info(term()) :: {:ok, info()} | :error
  def unserializable_info(%{@marker => true} = marker),
    do: {:ok, %{type: Map.get(marker, "__type__"), repr: Map.get(marker, "__repr__")}}

  def unserializable_info(_value), do: :error
end
